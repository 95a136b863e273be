//! "Node facts, converge, report" on a (fake) node, as a real run does for one container.

use provision::apply::{self, Ctx};
use provision::facts;
use provision::plan::ProfileFiles;
use provision::progress::Line;
use provision::report::ContainerReport;
use provision::request::{Options, Request};
use provision::transport::Transport;
use std::sync::Arc;

/// Reads the node's facts and converges `req` once with `ctx`.
pub fn converge_with(
    ctx: &Ctx,
    req: &Request,
    password: Option<&str>,
    files: &ProfileFiles,
) -> ContainerReport {
    let nf = facts::gather_node(ctx.node.as_ref()).expect("node facts");
    apply::converge(ctx, req, &nf, password, files, &Line::silent(&req.hostname))
}

/// Converges `req` once on `node` with `opts`, without a password or files.
pub fn converge_on(node: Arc<dyn Transport>, req: &Request, opts: Options) -> ContainerReport {
    converge_with(&Ctx::new(node, opts), req, None, &Vec::new())
}
