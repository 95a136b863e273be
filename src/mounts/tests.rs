use super::*;

fn spec(path: &str) -> MountSpec {
    MountSpec {
        path: path.into(),
        host: Some("/tank/media".into()),
        ..MountSpec::bare()
    }
}

#[test]
fn a_bind_mount_renders_as_pve_writes_it() {
    let mut m = spec("/media");
    m.ro = Some(true);
    m.owner = Some(Owner {
        uid: 1000,
        gid: 1001,
    });
    m.ownership = Some("idmap".into());
    assert!(check(std::slice::from_ref(&m)).is_empty());
    assert_eq!(
        m.value(&m.volume_arg()).unwrap(),
        "/tank/media,mp=/media,idmap=u:1000:1000:1;g:1001:1001:1,ro=1"
    );
    assert_eq!(m.host_owner(true), Some((1000, 1001)));
    m.ownership = None;
    assert_eq!(m.host_owner(true), Some((101_000, 101_001)));
    assert_eq!(m.host_owner(false), Some((1000, 1001)));
}

#[test]
fn paths_are_normalised_and_bad_ones_refused() {
    assert_eq!(container_mount_path("//data/").unwrap(), "/data");
    for bad in [
        "/", "data", "/a/../b", "/a/./b", "/proc/x", "/dev", "/a,ro=1", "/a\n",
    ] {
        assert!(container_mount_path(bad).is_err(), "{bad:?}");
    }
    for bad in ["/", "/etc/pve/priv", "/sys", "relative", "/x=y"] {
        assert!(host_path(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn exactly_one_source_and_options_that_fit_it() {
    let mut m = spec("/data");
    m.storage = Some("local-lvm".into());
    let e = check(std::slice::from_ref(&m));
    assert!(e.iter().any(|(f, _)| f == "mounts[0]"), "{e:?}");
    m.host = None;
    let e = check(std::slice::from_ref(&m));
    assert!(e.iter().any(|(f, _)| f == "mounts[0].size"), "{e:?}");
    m.size = Some(8.0);
    m.owner = Some(Owner { uid: 0, gid: 0 });
    let e = check(std::slice::from_ref(&m));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "mounts[0].owner");
}
