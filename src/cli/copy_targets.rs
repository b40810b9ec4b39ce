//! The copy targets of a profile (`[copy] to = ["offsite"]`): each another profile, whose
//! repository, password, backend options and environment file describe the repository that
//! `cairn -P NAME copy` copies into.
//!
//! A target's profile is found as `-P NAME` finds it ([`profile::find`]) and checked as any
//! profile is ([`profile::load`]). What opens the target's repository comes from the target's
//! profile alone: `[repository]` repo, password-file or password-command, options, and its
//! environment file (same ownership and mode rules), whose variables become the target's own
//! environment ([`GlobalOpts::environment`]) instead of this process's: an S3 target's
//! `AWS_*` credentials reach the target's backend only, and the source keeps its own. The
//! target's password is never the source's: its password-file or password-command, else
//! `CAIRN_PASSWORD_FILE`, `CAIRN_PASSWORD_COMMAND` or `CAIRN_PASSWORD` in its environment
//! file. Bandwidth limits, the cache directory, `no-cache` and `retry-lock` are the target
//! profile's where it gives them, else the source's (limits apply to both sides of a copy);
//! the backend options are the target profile's, plus `connections`, `timeout` and `retries`
//! given on the command line (`-o connections=8`) where the target's profile does not set them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn::Error;

use super::profile::{self, Applied};
use super::GlobalOpts;

/// One copy target: the target profile's name and the global options that open its
/// repository.
pub struct Target {
    /// The target profile's name.
    pub name: String,
    /// Its repository, password, options and limits, and its environment file's variables as
    /// [`GlobalOpts::environment`].
    pub globals: GlobalOpts,
}

/// The targets of profile `applied` (its `[copy] to`), only those named in `only` when it is
/// not empty, in the profile's order; `g` are the source's global options (the repository of
/// `applied`). Errors: [`Error::Usage`] for a profile without `[copy] to`, a name in `only`
/// that is not one of its targets, a target profile that cannot be found or read (or whose
/// environment file is unsafe), one that gives no repository or no password, or one whose
/// repository is the source's.
pub fn targets(applied: &Applied, only: &[String], g: &GlobalOpts) -> Result<Vec<Target>, Error> {
    let to = &applied.profile.copy.to;
    if to.is_empty() {
        return Err(Error::usage(format!(
            "{}: profile {:?} has no copy targets: add [copy] to = [\"offsite\"] (another profile, with the target repository), or give --from-repo",
            applied.at("copy", "to"),
            applied.name
        )));
    }
    if let Some(o) = only.iter().find(|o| !to.contains(o)) {
        return Err(Error::usage(format!(
            "--to {o}: not a copy target of profile {:?} (its [copy] to: {})",
            applied.name,
            to.join(", ")
        )));
    }
    let mut out = Vec::new();
    for name in to.iter().filter(|n| only.is_empty() || only.contains(n)) {
        let file = profile::find(name).map_err(|e| {
            Error::usage(format!("{}: copy target {name:?}: {}", applied.at("copy", "to"), usage_text(e)))
        })?;
        out.push(target(applied, name, &file, g)?);
    }
    Ok(out)
}

/// The snapshots profile `applied` copies: its `[copy]` hosts, tags and paths, the hosts by
/// default the profile's own host (`[backup] host`, else this machine's name), as `cairn
/// drill` with a profile picks its host's snapshots: a repository may hold many hosts, and a
/// profile copies its own.
pub fn source_filter(applied: &Applied) -> cairn::snapshot::SnapshotFilter {
    let c = &applied.profile.copy;
    let hosts = match &c.hosts {
        Some(h) if !h.is_empty() => h.clone(),
        _ => vec![applied.profile.backup.host.clone().unwrap_or_else(cairn::util::hostname)],
    };
    cairn::snapshot::SnapshotFilter {
        hosts,
        tags: c.tags.clone().unwrap_or_default(),
        paths: c.paths.clone().unwrap_or_default(),
    }
}

/// The message of a usage error, without the variant's wrapping.
fn usage_text(e: Error) -> String {
    match e {
        Error::Usage(m) => m,
        e => super::error_text(&e),
    }
}

/// Target `name` of `applied`, whose profile is `file`: see [`targets`].
fn target(applied: &Applied, name: &str, file: &Path, g: &GlobalOpts) -> Result<Target, Error> {
    let at = applied.at("copy", "to");
    let itself = || {
        Error::usage(format!(
            "{at}: copy target {name:?} is this profile itself ({}): a copy target is another profile, with another repository",
            file.display()
        ))
    };
    if name == applied.name || same_file(file, &applied.file) {
        return Err(itself());
    }
    let (text, prof) =
        profile::load(file).map_err(|e| Error::usage(format!("{at}: copy target {name:?}: {}", usage_text(e))))?;
    let t = Applied {
        name: name.to_string(),
        file: file.to_path_buf(),
        text,
        profile: prof,
        injected: Vec::new(),
        env_set: Vec::new(),
    };
    let r = &t.profile.repository;
    let mut env = BTreeMap::new();
    if let Some(f) = &r.environment_file {
        let vars = super::profile_env::read_environment_file(f, &t.at("repository", "environment-file"))?;
        for (k, v) in vars {
            // As when a file is applied to the process: the first line of a name counts.
            env.entry(k).or_insert(v);
        }
    }
    let repo = r.repo.clone().or_else(|| env.get("CAIRN_REPOSITORY").cloned()).filter(|r| !r.is_empty());
    let Some(repo) = repo else {
        return Err(Error::usage(format!(
            "{}: copy target {name:?} gives no repository: add repo = \"s3:...\" (or a path) under [repository] of {}",
            t.at("repository", "repo"),
            file.display()
        )));
    };
    let (password_file, password_command) = match (&r.password_file, &r.password_command) {
        (None, None) => (env.get("CAIRN_PASSWORD_FILE").map(PathBuf::from), env.get("CAIRN_PASSWORD_COMMAND").cloned()),
        (f, c) => (f.clone(), c.clone()),
    };
    if password_file.is_none() && password_command.is_none() && !env.contains_key("CAIRN_PASSWORD") {
        return Err(Error::usage(format!(
            "{}: copy target {name:?} gives no password: add password-file or password-command under [repository] of {} (or CAIRN_PASSWORD in its environment-file); the source's password is never used for a target",
            t.at("repository", "password-file"),
            file.display()
        )));
    }
    let mut options = option_list(&r.options);
    // The transfer options typed on the command line (not the source profile's) apply to both
    // sides, unless the target's profile sets them.
    let source_profile = option_list(&applied.profile.repository.options);
    for o in &g.options {
        let key = option_key(o);
        let typed = !source_profile.iter().any(|p| option_key(p) == key && p.trim() == o.trim());
        if typed && SHARED_OPTIONS.contains(&key) && !options.iter().any(|t| option_key(t) == key) {
            options.push(o.clone());
        }
    }
    let mut globals = g.clone();
    globals.repo = repo;
    globals.password_file = password_file;
    globals.password_command = password_command;
    globals.options = options;
    globals.cache_dir = r.cache_dir.clone().or_else(|| g.cache_dir.clone());
    globals.no_cache = r.no_cache.unwrap_or(g.no_cache);
    globals.limit_upload = r.limit_upload.or(g.limit_upload);
    globals.limit_download = r.limit_download.or(g.limit_download);
    globals.retry_lock = r.retry_lock.clone().or_else(|| g.retry_lock.clone());
    globals.profile = Some(name.to_string());
    globals.config = None;
    globals.environment = Some(env);
    if location_key(&g.repo, &g.options) == location_key(&globals.repo, &globals.options) {
        return Err(Error::usage(format!(
            "{at}: copy target {name:?} has the same repository as profile {:?} ({}): a copy needs another repository",
            applied.name, globals.repo
        )));
    }
    Ok(Target { name: name.to_string(), globals })
}

/// Backend options about the transfer, not the place: given on the command line of a copy,
/// they apply to the target too.
const SHARED_OPTIONS: [&str; 3] = ["connections", "timeout", "retries"];

/// A profile's `[repository] options` as `KEY=VALUE` strings.
fn option_list(o: &Option<profile::BackendOptions>) -> Vec<String> {
    match o {
        None => Vec::new(),
        Some(profile::BackendOptions::Table(t)) => t.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        Some(profile::BackendOptions::List(l)) => l.clone(),
    }
}

/// The key of a `KEY=VALUE` option.
fn option_key(o: &str) -> &str {
    o.split_once('=').map_or(o, |(k, _)| k).trim()
}

/// True when `a` and `b` are the same file (by device and inode), or the same path when
/// either cannot be read.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => a == b,
    }
}

/// What identifies the place repository `repo` (with backend options `options`) is stored:
/// an S3 location's endpoint, bucket and prefix; a local directory's canonical path (an
/// `opendal:fs` repository's `root` likewise); another OpenDAL service's scheme and options.
fn location_key(repo: &str, options: &[String]) -> String {
    let option = |key: &str| {
        options.iter().find_map(|o| o.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim()))
    };
    let local = |p: &str| {
        let p = Path::new(p);
        let p = p.canonicalize().or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf());
        format!("local {}", p.display())
    };
    if repo.starts_with("s3:") {
        return match cairn::backend::opendal::S3Location::parse(repo) {
            Ok(l) => format!(
                "s3 {} {} {}",
                l.endpoint.to_ascii_lowercase().trim_end_matches('/'),
                l.bucket,
                l.prefix.trim_matches('/')
            ),
            Err(_) => repo.to_string(),
        };
    }
    if let Some(scheme) = repo.strip_prefix("opendal:") {
        if let (Some(root), "fs") = (option("root"), scheme) {
            return local(root);
        }
        let mut service: Vec<&str> = options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(o.split('=').next().map(str::trim), Some("timeout" | "connections" | "retries")))
            .collect();
        service.sort_unstable();
        return format!("opendal {scheme} {}", service.join(" "));
    }
    local(repo.strip_prefix("local:").unwrap_or(repo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::os::unix::fs::PermissionsExt;

    /// The global options of `cairn ARGS snapshots`.
    fn globals(args: &[&str]) -> GlobalOpts {
        let mut v = vec!["cairn"];
        v.extend_from_slice(args);
        v.push("snapshots");
        match super::super::Cli::try_parse_from(v) {
            Ok(c) => c.global,
            Err(e) => panic!("{e}"),
        }
    }

    /// Profile `name` with `text` in `dir`, loaded as `-P NAME` would load it.
    fn applied(dir: &Path, name: &str, text: &str) -> Applied {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let (text, profile) = profile::load(&file).unwrap();
        Applied { name: name.into(), file, text, profile, injected: Vec::new(), env_set: Vec::new() }
    }

    fn write_profile(dir: &Path, name: &str, text: &str) -> PathBuf {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        file
    }

    fn usage(r: Result<Target, Error>) -> String {
        match r {
            Err(Error::Usage(m)) => m,
            Err(e) => panic!("not a usage error: {e}"),
            Ok(t) => panic!("target {} accepted", t.name),
        }
    }

    #[test]
    fn a_targets_repository_password_and_environment_are_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let env = d.join("offsite.env");
        std::fs::write(
            &env,
            "AWS_ACCESS_KEY_ID=AKIDOFFSITE\nexport AWS_SECRET_ACCESS_KEY='offsite secret'\nCAIRN_PASSWORD=offsite-pw\nAWS_ACCESS_KEY_ID=second\n",
        )
        .unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
        let target_text = format!(
            "[repository]\nrepo = \"s3:http://127.0.0.1:9/bkt/offsite\"\nenvironment-file = {:?}\noptions = {{ \"s3.region\" = \"eu-west-3\" }}\nlimit-upload = 100\n\n[forget]\nkeep-last = 5\n",
            env.display().to_string()
        );
        let file = write_profile(d, "offsite", &target_text);
        let src = applied(
            d,
            "mail1",
            "[repository]\nrepo = \"/srv/repo\"\npassword-file = \"/etc/pw\"\noptions = { timeout = \"30\", \"s3.region\" = \"us-east-1\" }\n\n[copy]\nto = [\"offsite\"]\n",
        );
        let g = globals(&[
            "-r",
            "/srv/repo",
            "--password-file",
            "/etc/pw",
            "-o",
            "connections=2",
            "-o",
            "timeout=30",
            "-o",
            "s3.region=us-east-1",
            "--limit-download",
            "50",
        ]);
        let t = target(&src, "offsite", &file, &g).unwrap();
        let tg = &t.globals;
        assert_eq!(tg.repo, "s3:http://127.0.0.1:9/bkt/offsite");
        // Never the source's password file: the target's environment file gives CAIRN_PASSWORD.
        assert_eq!(tg.password_file, None);
        assert_eq!(tg.password_command, None);
        assert_eq!(tg.password_variable().as_deref(), Some("offsite-pw"));
        // The target's own options, and the command line's transfer options (connections=2
        // is not in the source profile: typed); never the source profile's.
        assert_eq!(tg.options, vec!["s3.region=eu-west-3".to_string(), "connections=2".to_string()]);
        assert_eq!((tg.limit_upload, tg.limit_download), (Some(100), Some(50)));
        let own = tg.environment.as_ref().unwrap();
        assert_eq!(own.get("AWS_ACCESS_KEY_ID").map(String::as_str), Some("AKIDOFFSITE"));
        assert_eq!(own.get("AWS_SECRET_ACCESS_KEY").map(String::as_str), Some("offsite secret"));
        // Nothing of it reached this process's environment.
        assert_ne!(std::env::var("AWS_ACCESS_KEY_ID").ok().as_deref(), Some("AKIDOFFSITE"));
        assert_eq!(std::env::var("CAIRN_PASSWORD").ok().as_deref().filter(|p| *p == "offsite-pw"), None);
        // It reaches the target's backend options.
        let opts = tg.backend_options().unwrap();
        assert_eq!(opts.environment.get("AWS_ACCESS_KEY_ID").map(String::as_str), Some("AKIDOFFSITE"));
        // The source keeps the process's environment.
        assert!(g.environment.is_none());
        assert!(g.backend_options().unwrap().environment.is_empty());
    }

    #[test]
    fn a_targets_own_password_file_is_used_and_a_target_without_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = applied(d, "mail1", "[repository]\nrepo = \"/srv/repo\"\n\n[copy]\nto = [\"offsite\"]\n");
        let g = globals(&["-r", "/srv/repo", "--password-file", "/etc/source-pw"]);
        let file =
            write_profile(d, "offsite", "[repository]\nrepo = \"/srv/offsite\"\npassword-file = \"/etc/offsite-pw\"\n");
        let t = target(&src, "offsite", &file, &g).unwrap();
        assert_eq!(t.globals.password_file.as_deref(), Some(Path::new("/etc/offsite-pw")));
        assert_eq!(t.globals.password_variable(), None, "no CAIRN_PASSWORD of the process for a target");

        let file = write_profile(d, "nopw", "[repository]\nrepo = \"/srv/offsite\"\n");
        let m = usage(target(&src, "nopw", &file, &g));
        assert!(m.contains("gives no password") && m.contains("never used for a target"), "{m}");

        let file = write_profile(d, "norepo", "[repository]\npassword-file = \"/etc/pw\"\n");
        let m = usage(target(&src, "norepo", &file, &g));
        assert!(m.contains("gives no repository"), "{m}");
    }

    #[test]
    fn a_target_on_the_sources_repository_or_the_profile_itself_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let repo = d.join("repo");
        std::fs::create_dir(&repo).unwrap();
        let src = applied(d, "mail1", "[copy]\nto = [\"offsite\"]\n");
        let g = globals(&["-r", repo.to_str().unwrap()]);
        // The same directory spelled another way.
        let text = format!("[repository]\nrepo = \"local:{}/../repo/\"\npassword-file = \"/etc/pw\"\n", repo.display());
        let file = write_profile(d, "offsite", &text);
        let m = usage(target(&src, "offsite", &file, &g));
        assert!(m.contains("has the same repository as profile \"mail1\""), "{m}");
        let text = format!(
            "[repository]\nrepo = \"opendal:fs\"\noptions = [\"root={}\"]\npassword-file = \"/etc/pw\"\n",
            repo.display()
        );
        let file = write_profile(d, "viafs", &text);
        assert!(usage(target(&src, "viafs", &file, &g)).contains("same repository"));

        let s3 = globals(&["-r", "s3:http://Host:9000/bkt/mail1/"]);
        let file = write_profile(
            d,
            "s3same",
            "[repository]\nrepo = \"s3:http://host:9000/bkt/mail1\"\npassword-file = \"/etc/pw\"\n",
        );
        assert!(usage(target(&src, "s3same", &file, &s3)).contains("same repository"));
        let file = write_profile(
            d,
            "s3other",
            "[repository]\nrepo = \"s3:http://host:9000/bkt/offsite\"\npassword-file = \"/etc/pw\"\n",
        );
        assert!(target(&src, "s3other", &file, &s3).is_ok());

        let m = usage(target(&src, "mail1", &src.file, &g));
        assert!(m.contains("is this profile itself"), "{m}");
    }

    #[test]
    fn a_targets_environment_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let env = d.join("offsite.env");
        std::fs::write(&env, "CAIRN_PASSWORD=x\n").unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
        let src = applied(d, "mail1", "[copy]\nto = [\"offsite\"]\n");
        let g = globals(&["-r", "/srv/repo"]);
        let text =
            format!("[repository]\nrepo = \"/srv/offsite\"\nenvironment-file = {:?}\n", env.display().to_string());
        let file = write_profile(d, "offsite", &text);
        let m = usage(target(&src, "offsite", &file, &g));
        assert!(m.contains("has mode 0644") && m.contains("chmod 600"), "{m}");
    }

    #[test]
    fn the_copy_section_is_checked_when_the_profile_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let refused = |name: &str, text: &str| -> String {
            let file = write_profile(d, name, text);
            match profile::load(&file) {
                Err(Error::Usage(m)) => m,
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("{text} accepted"),
            }
        };
        assert!(refused("a", "[copy]\nto = [\"a\"]\n").contains("is this profile itself"));
        assert!(refused("b", "[copy]\nto = [\"x\", \"x\"]\n").contains("named twice"));
        assert!(refused("c", "[copy]\nto = [\"../x\"]\n").contains("not a profile name"));
        assert!(refused("d", "[copy]\nhosts = [\"mail1\"]\n").contains("names no target"));
        assert!(refused("e", "[copy]\nto = [\"x\"]\nkeep-last = 3\n").contains("unknown field"));
    }

    #[test]
    fn copies_select_the_profiles_own_host_unless_told() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = applied(d, "mail1", "[backup]\nhost = \"mail1\"\n\n[copy]\nto = [\"offsite\"]\ntags = [\"nightly\"]\n");
        let f = source_filter(&p);
        assert_eq!(f.hosts, vec!["mail1".to_string()]);
        assert_eq!(f.tags, vec!["nightly".to_string()]);
        assert!(f.paths.is_empty());
        let p = applied(d, "other", "[copy]\nto = [\"offsite\"]\nhosts = [\"a\", \"b\"]\n");
        assert_eq!(source_filter(&p).hosts, vec!["a".to_string(), "b".to_string()]);
        let p = applied(d, "bare", "[copy]\nto = [\"offsite\"]\n");
        assert_eq!(source_filter(&p).hosts, vec![cairn::util::hostname()]);
    }

    #[test]
    fn only_named_targets_are_taken_and_unknown_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = applied(dir.path(), "mail1", "[copy]\nto = [\"offsite\"]\n");
        let g = globals(&["-r", "/srv/repo"]);
        match targets(&p, &["elsewhere".to_string()], &g) {
            Err(Error::Usage(m)) => assert!(m.contains("--to elsewhere: not a copy target"), "{m}"),
            _ => panic!("--to elsewhere accepted"),
        }
        let none = applied(dir.path(), "plain", "[backup]\nhost = \"x\"\n");
        match targets(&none, &[], &g) {
            Err(Error::Usage(m)) => assert!(m.contains("has no copy targets"), "{m}"),
            _ => panic!("a profile without [copy] gave targets"),
        }
    }
}
