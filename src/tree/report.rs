//! Nodes as `ls --json` and `find --json` print them (restic's field names): the fields both
//! show ([`EntryInfo`]) flattened into each. The JSON output has always had its keys sorted:
//! print through [`sorted_json`].

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

use super::{kind_name, mode_string, st_mode, Node, NodeKind, Xattr, Zone};

/// What `ls --json` and `find --json` both show of a node (restic's fields): flattened into
/// [`NodeInfo`] and [`MatchInfo`]. Fields in name order.
#[derive(Clone, Debug, Serialize)]
pub struct EntryInfo {
    /// Status change time.
    pub ctime: String,
    /// Owner gid.
    pub gid: u32,
    /// Owner group name ("" when unknown).
    pub group: String,
    /// Inode number.
    pub inode: u64,
    /// Symlink target (symlinks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Hard link count.
    pub links: u64,
    /// POSIX `st_mode` (type and permission bits).
    pub mode: u32,
    /// Modification time.
    pub mtime: String,
    /// File name (lossy for non-UTF-8 names).
    pub name: String,
    /// Absolute snapshot path.
    pub path: String,
    /// Mode as `ls -l` shows it.
    pub permissions: String,
    /// Size in bytes.
    pub size: u64,
    /// restic's type name (`file`, `dir`, `symlink`...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Owner uid.
    pub uid: u32,
    /// Owner user name ("" when unknown).
    pub user: String,
}

impl EntryInfo {
    /// The report of `node` at snapshot path `path` (times RFC 3339 in local time).
    pub fn new(path: &Path, node: &Node) -> Self {
        EntryInfo {
            ctime: node.ctime.to_rfc3339(Zone::Local),
            gid: node.gid,
            group: node.group.clone(),
            inode: node.inode,
            link_target: link_target(node),
            links: node.links,
            mode: st_mode(node),
            mtime: node.mtime.to_rfc3339(Zone::Local),
            name: node.name_lossy().into_owned(),
            path: path.display().to_string(),
            permissions: mode_string(node.kind, node.mode),
            size: node.size,
            kind: kind_name(node.kind),
            uid: node.uid,
            user: node.user.clone(),
        }
    }
}

/// One node as `ls --json` prints it: [`EntryInfo`] (`mode` is the POSIX `st_mode`,
/// `permissions` the `ls -l` string, times RFC 3339 in local time), `message_type` and
/// `struct_type`, and `xattrs` when the node has extended attributes. Print it with
/// [`sorted_json`]: the keys come out in name order only through a `serde_json::Value`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    /// The fields `find --json` shows too.
    #[serde(flatten)]
    pub entry: EntryInfo,
    /// Always `"node"`.
    pub message_type: &'static str,
    /// Always `"node"`.
    pub struct_type: &'static str,
    /// Extended attributes (left out when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<XattrInfo>,
}

impl NodeInfo {
    /// The report of `node` at snapshot path `path`.
    pub fn new(path: &Path, node: &Node) -> Self {
        NodeInfo {
            entry: EntryInfo::new(path, node),
            message_type: "node",
            struct_type: "node",
            xattrs: node.xattrs.iter().map(XattrInfo::new).collect(),
        }
    }
}

/// `value` as one line of JSON with every object's keys in name order (as `ls --json` and
/// `find --json` have always printed them; a flattened struct alone would not).
/// Errors: [`Error::Internal`] when it cannot be serialized.
pub fn sorted_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_value(value).map(|v| v.to_string()).map_err(|e| Error::internal(format!("JSON: {e}")))
}

/// One extended attribute as `ls --json` prints it: `name` as text, `value` in standard base64
/// (with padding); a name that is not UTF-8 also gets `name_base64`, its exact bytes.
#[derive(Clone, Debug, Serialize)]
pub struct XattrInfo {
    /// The name (lossy for non-UTF-8 names).
    pub name: String,
    /// The name's bytes in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_base64: Option<String>,
    /// The value in base64.
    pub value: String,
}

impl XattrInfo {
    /// The report of `x`.
    pub fn new(x: &Xattr) -> Self {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        XattrInfo {
            name: x.name_lossy().into_owned(),
            name_base64: std::str::from_utf8(&x.name).is_err().then(|| b64(&x.name)),
            value: b64(&x.value),
        }
    }
}

/// One match as `find --json` prints it (restic's fields): [`EntryInfo`] and `device_id`.
/// Print it with [`sorted_json`].
#[derive(Clone, Debug, Serialize)]
pub struct MatchInfo {
    /// Device the entry lived on (`st_dev`).
    pub device_id: u64,
    /// The fields `ls --json` shows too.
    #[serde(flatten)]
    pub entry: EntryInfo,
}

impl MatchInfo {
    /// The report of `node` at snapshot path `path`.
    pub fn new(path: &Path, node: &Node) -> Self {
        MatchInfo { device_id: node.device, entry: EntryInfo::new(path, node) }
    }
}

fn link_target(node: &Node) -> Option<String> {
    (node.kind == NodeKind::Symlink).then(|| String::from_utf8_lossy(&node.symlink_target).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Timestamp;

    fn node(kind: NodeKind) -> Node {
        Node {
            name: b"a\xffb".to_vec(),
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            user: "u".into(),
            group: "g".into(),
            size: 3,
            mtime: Timestamp { secs: 0, nanos: 0 },
            ctime: Timestamp { secs: 0, nanos: 0 },
            inode: 4,
            device: 5,
            links: 1,
            rdev: 0,
            symlink_target: b"t".to_vec(),
            content: Vec::new(),
            subtree: None,
            xattrs: Vec::new(),
        }
    }

    /// The keys come out sorted (as `json!` maps printed them), optional ones only when set.
    #[test]
    fn keys_are_sorted_and_optional_ones_left_out() {
        let keys = |v: serde_json::Value| -> Vec<String> {
            v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
        };
        let mut n = node(NodeKind::File);
        n.xattrs = vec![Xattr { name: b"user.\xff".to_vec(), value: b"v".to_vec() }];
        let json = sorted_json(&NodeInfo::new(Path::new("/a"), &n)).unwrap();
        let all = keys(serde_json::from_str(&json).unwrap());
        let want = [
            "ctime",
            "gid",
            "group",
            "inode",
            "links",
            "message_type",
            "mode",
            "mtime",
            "name",
            "path",
            "permissions",
            "size",
            "struct_type",
            "type",
            "uid",
            "user",
            "xattrs",
        ];
        assert_eq!(all, want);
        assert!(json.starts_with(r#"{"ctime":"#) && json.contains(r#""xattrs":[{"name":"#), "{json}");
        assert!(json.contains(r#""name_base64":"#));
        let json = sorted_json(&NodeInfo::new(Path::new("/a"), &node(NodeKind::Symlink))).unwrap();
        assert!(json.contains(r#""link_target":"t""#) && !json.contains("xattrs"));
        let m = sorted_json(&MatchInfo::new(Path::new("/a"), &node(NodeKind::Symlink))).unwrap();
        assert!(m.starts_with(r#"{"ctime":"1970"#) && m.contains(r#""device_id":5,"gid":2,"#), "{m}");
    }
}
