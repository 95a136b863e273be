# The node directory of a bind mount: created when asked, owned as the profile says. Refuses a
# symbolic link (the owner would land on its target) and anything that is not a directory.
# Args: path, create (1/0), uid:gid or "-" (leave the owner alone).
p=$1 create=$2 owner=$3
if [ -L "$p" ]; then
    echo "bind mount source $p is a symbolic link on the node; give the directory it points to" >&2
    exit 1
fi
if [ ! -e "$p" ]; then
    if [ "$create" != 1 ]; then
        echo "bind mount source path '$p' does not exist on the node (PVE refuses the mount point); create it, or set create = true" >&2
        exit 1
    fi
    mkdir -p -- "$p"
    echo "created $p"
fi
if [ ! -d "$p" ]; then
    echo "bind mount source $p is not a directory on the node" >&2
    exit 1
fi
if [ "$owner" != - ]; then
    have=$(stat -c %u:%g -- "$p")
    if [ "$have" != "$owner" ]; then
        chown -- "$owner" "$p"
        echo "owner of $p: $have -> $owner"
    fi
fi
