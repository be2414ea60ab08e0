//! `initProcessEnabled` on Docker: the init runs as `/dev/init`, as Docker 1.13–17.x ran it.
//!
//! Docker's `--init` (`HostConfig.Init`) has changed shape: from 1.13 to 17.x the daemon
//! bind-mounted its init binary read-only at `/dev/init` and ran `/dev/init -- ENTRYPOINT CMD`;
//! from 18.06 it mounts it at `/sbin/docker-init`. Tasks written for the ECS agent of that time
//! may look for a process named `init` (the ECS agent's own `init-process` case runs
//! `pidof init`), so the agent reproduces the older shape itself instead of setting
//! `HostConfig.Init`:
//!
//! * [`InitBinary`] (`--init-binary auto|engine|PATH`) says where the binary comes from.
//!   `auto` asks the engine for the name of its init (`/info` → `InitBinary`, normally
//!   `docker-init`) and looks for it where the daemon does ([`search_paths`]: Docker's libexec
//!   directories, then `PATH`), symlinks resolved; only for an engine on this host (a unix
//!   socket). Not found, or `engine`: `HostConfig.Init` as before (warned once).
//! * [`plan`] (pure): the container's effective entrypoint and command by Docker's own rule
//!   ([`effective_command`]), prefixed with `/dev/init --`; [`apply`] (pure) writes that into
//!   the create body with the read-only bind. The image's `Entrypoint` / `Cmd` come from an
//!   image inspect, needed only when the task definition sets no entry point ([`needs_image`]).
//!
//! IO stays in `docker.rs` (the `/info` and image inspect calls) and in [`locate`]'s probe.

use bollard::models::ContainerCreateBody;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the init binary is mounted in the container, and the first argument of its command.
pub const DEV_INIT: &str = "/dev/init";

/// The engine's init binary when `/info` names none (Docker's `DefaultInitBinary`).
pub const DEFAULT_INIT_BINARY: &str = "docker-init";

/// Where dockerd looks for a relative init binary before its `PATH` (`LookupInitPath`).
const DAEMON_LIBEXEC_DIRS: [&str; 4] = [
    "/usr/local/libexec/docker",
    "/usr/libexec/docker",
    "/usr/local/lib/docker",
    "/usr/lib/docker",
];

/// Searched after the agent's own `PATH`: where a daemon started by an init system finds its
/// binaries even when the agent runs with a narrower `PATH`.
const SYSTEM_BIN_DIRS: [&str; 6] =
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Where the init of an `initProcessEnabled` container comes from (`--init-binary`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InitBinary {
    /// The engine's own init binary, found on this host; the engine's `--init` if not found.
    #[default]
    Auto,
    /// Always the engine's `--init` (`HostConfig.Init`: Docker ≥ 18.06 runs it as
    /// `/sbin/docker-init`).
    Engine,
    /// This path on the engine's host, mounted as given.
    Path(PathBuf),
}

impl FromStr for InitBinary {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(InitBinary::Auto),
            "engine" => Ok(InitBinary::Engine),
            p if p.starts_with('/') && !p.contains(':') => Ok(InitBinary::Path(PathBuf::from(p))),
            other => Err(format!(
                "--init-binary {other:?}: expected auto, engine or an absolute path (no ':')"
            )),
        }
    }
}

impl std::fmt::Display for InitBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitBinary::Auto => f.write_str("auto"),
            InitBinary::Engine => f.write_str("engine"),
            InitBinary::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where to look for the engine's init binary `name`, in order: `name` itself when absolute;
/// else Docker's libexec directories, the directories of `path_env`, then the usual system
/// binary directories (each directory once).
pub fn search_paths(name: &str, path_env: Option<&OsStr>) -> Vec<PathBuf> {
    let name = name.trim();
    if name.is_empty() {
        return Vec::new();
    }
    if Path::new(name).is_absolute() {
        return vec![PathBuf::from(name)];
    }
    if name.contains('/') {
        // A relative path with directories: dockerd would resolve it against its own working
        // directory, which the agent cannot know.
        return Vec::new();
    }
    let mut dirs: Vec<PathBuf> = DAEMON_LIBEXEC_DIRS.iter().map(PathBuf::from).collect();
    dirs.extend(path_env.map(std::env::split_paths).into_iter().flatten());
    dirs.extend(SYSTEM_BIN_DIRS.iter().map(PathBuf::from));
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in dirs.into_iter().filter(|d| d.is_absolute()) {
        let candidate = dir.join(name);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// The first candidate `probe` accepts, as `probe` resolved it (the real file behind symlinks).
pub fn locate(candidates: &[PathBuf], probe: impl Fn(&Path) -> Option<PathBuf>) -> Option<PathBuf> {
    candidates.iter().find_map(|c| probe(c))
}

/// The real probe: `path` with symlinks resolved, if that is an executable regular file.
pub fn executable_file(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let real = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(real)
}

/// An image's own `Entrypoint` and `Cmd` (image inspect, `Config`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageCommand {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

/// Whether [`plan`] needs the image's [`ImageCommand`]: only when the container sets no entry
/// point of its own (a non-empty one replaces the image's entry point and drops its command).
pub fn needs_image(spec_entrypoint: Option<&[String]>) -> bool {
    spec_entrypoint.is_none_or(|e| e.is_empty())
}

/// The entry point and command the engine would run, by Docker's merge of container and image
/// config: a non-empty container entry point replaces the image's and the image's command is
/// then not used (only the container's own); with none, the container's command (or else the
/// image's) follows the image's entry point. An explicitly empty entry point (`[]`) clears the
/// image's.
pub fn effective_command(
    spec_entrypoint: Option<&[String]>,
    spec_cmd: Option<&[String]>,
    image: &ImageCommand,
) -> (Vec<String>, Vec<String>) {
    let mut entrypoint = spec_entrypoint.unwrap_or_default().to_vec();
    let mut cmd = spec_cmd.unwrap_or_default().to_vec();
    if entrypoint.is_empty() {
        if cmd.is_empty() {
            cmd = image.cmd.clone().unwrap_or_default();
        }
        if spec_entrypoint.is_none() {
            entrypoint = image.entrypoint.clone().unwrap_or_default();
        }
    }
    (entrypoint, cmd)
}

/// How an `initProcessEnabled` container gets its init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitLaunch {
    /// `HostConfig.Init`: the engine's own `--init`.
    Engine,
    /// `binary` bind-mounted read-only at [`DEV_INIT`], and the container's entry point
    /// `["/dev/init", "--", effective entry point…]` with the effective command.
    DevInit { binary: PathBuf, entrypoint: Vec<String>, cmd: Vec<String> },
}

/// The launch for a container that asked for an init: [`InitLaunch::DevInit`] when the agent
/// knows the engine's init `binary`, else (or when there is nothing to run, which the engine
/// reports itself as "no command specified") [`InitLaunch::Engine`].
pub fn plan(
    binary: Option<&Path>,
    spec_entrypoint: Option<&[String]>,
    spec_cmd: Option<&[String]>,
    image: &ImageCommand,
) -> InitLaunch {
    let Some(binary) = binary else { return InitLaunch::Engine };
    let (entrypoint, cmd) = effective_command(spec_entrypoint, spec_cmd, image);
    if entrypoint.is_empty() && cmd.is_empty() {
        return InitLaunch::Engine;
    }
    let mut with_init = vec![DEV_INIT.to_string(), "--".to_string()];
    with_init.extend(entrypoint);
    InitLaunch::DevInit { binary: binary.to_path_buf(), entrypoint: with_init, cmd }
}

/// Writes `launch` into a create body made with `HostConfig.Init` set.
pub fn apply(body: &mut ContainerCreateBody, launch: &InitLaunch) {
    let InitLaunch::DevInit { binary, entrypoint, cmd } = launch else { return };
    body.entrypoint = Some(entrypoint.clone());
    // Docker does not merge the image's Cmd under a container entry point: none is none.
    body.cmd = (!cmd.is_empty()).then(|| cmd.clone());
    let host = body.host_config.get_or_insert_with(Default::default);
    host.init = None;
    host.binds.get_or_insert_with(Vec::new).push(format!("{}:{DEV_INIT}:ro", binary.display()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::HostConfig;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageCommand {
        ImageCommand { entrypoint: entrypoint.map(v), cmd: cmd.map(v) }
    }

    #[test]
    fn init_binary_flag_parses_auto_engine_and_absolute_paths() {
        assert_eq!("auto".parse::<InitBinary>(), Ok(InitBinary::Auto));
        assert_eq!("engine".parse::<InitBinary>(), Ok(InitBinary::Engine));
        assert_eq!(
            "/usr/bin/tini-static".parse::<InitBinary>(),
            Ok(InitBinary::Path("/usr/bin/tini-static".into()))
        );
        for bad in ["tini", "", "./docker-init", "/a:b"] {
            assert!(bad.parse::<InitBinary>().is_err(), "{bad:?}");
        }
        assert_eq!(InitBinary::default().to_string(), "auto");
    }

    #[test]
    fn search_follows_the_daemon_libexec_dirs_then_path_then_system_dirs() {
        let paths = search_paths("docker-init", Some(OsStr::new("/opt/bin:relative:/usr/bin")));
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            shown[..6],
            v(&[
                "/usr/local/libexec/docker/docker-init",
                "/usr/libexec/docker/docker-init",
                "/usr/local/lib/docker/docker-init",
                "/usr/lib/docker/docker-init",
                "/opt/bin/docker-init",
                "/usr/bin/docker-init",
            ])[..]
        );
        assert!(!shown.iter().any(|p| p.starts_with("relative")), "{shown:?}");
        assert_eq!(shown.iter().filter(|p| *p == "/usr/bin/docker-init").count(), 1);
        assert!(shown.contains(&"/sbin/docker-init".to_string()));
        assert_eq!(search_paths("/opt/tini", None), vec![PathBuf::from("/opt/tini")]);
        assert!(search_paths("", None).is_empty());
        assert!(search_paths("bin/docker-init", None).is_empty());
    }

    #[test]
    fn locate_returns_the_first_resolved_candidate() {
        let candidates = search_paths("docker-init", Some(OsStr::new("/usr/bin")));
        let probe = |p: &Path| {
            (p == Path::new("/usr/bin/docker-init")).then(|| PathBuf::from("/usr/bin/tini-static"))
        };
        assert_eq!(locate(&candidates, probe), Some(PathBuf::from("/usr/bin/tini-static")));
        assert_eq!(locate(&candidates, |_| None), None);
    }

    #[test]
    fn effective_command_follows_dockers_merge() {
        let img = image(Some(&["/entry.sh"]), Some(&["serve", "--port", "80"]));
        let run = v(&["sh", "-c", "exit 42"]);
        // Task command only: the image's entry point runs it; the image's Cmd is replaced.
        assert_eq!(effective_command(None, Some(&run), &img), (v(&["/entry.sh"]), run.clone()));
        // Neither: the image's entry point and command.
        assert_eq!(
            effective_command(None, None, &img),
            (v(&["/entry.sh"]), v(&["serve", "--port", "80"]))
        );
        // Task entry point without command: the image's Cmd is NOT used.
        assert_eq!(
            effective_command(Some(&v(&["/bin/app"])), None, &img),
            (v(&["/bin/app"]), vec![])
        );
        // Both from the task.
        assert_eq!(
            effective_command(Some(&v(&["/bin/app"])), Some(&v(&["-v"])), &img),
            (v(&["/bin/app"]), v(&["-v"]))
        );
        // An explicitly empty entry point clears the image's; the image's command then runs.
        assert_eq!(
            effective_command(Some(&[]), None, &img),
            (vec![], v(&["serve", "--port", "80"]))
        );
        // An empty task command counts as none.
        assert_eq!(
            effective_command(None, Some(&[]), &img),
            (v(&["/entry.sh"]), v(&["serve", "--port", "80"]))
        );
        assert!(needs_image(None) && needs_image(Some(&[])));
        assert!(!needs_image(Some(&v(&["/bin/app"]))));
    }

    #[test]
    fn plan_prefixes_dev_init_or_falls_back_to_the_engine_init() {
        let busybox = image(None, Some(&["sh"]));
        let run = v(&["sh", "-c", "pidof init"]);
        let binary = Path::new("/usr/bin/tini-static");
        assert_eq!(
            plan(Some(binary), None, Some(&run), &busybox),
            InitLaunch::DevInit {
                binary: binary.into(),
                entrypoint: v(&["/dev/init", "--"]),
                cmd: run.clone()
            }
        );
        assert_eq!(
            plan(Some(binary), Some(&v(&["/bin/app", "-x"])), None, &busybox),
            InitLaunch::DevInit {
                binary: binary.into(),
                entrypoint: v(&["/dev/init", "--", "/bin/app", "-x"]),
                cmd: vec![]
            }
        );
        assert_eq!(plan(None, None, Some(&run), &busybox), InitLaunch::Engine);
        assert_eq!(plan(Some(binary), None, None, &ImageCommand::default()), InitLaunch::Engine);
    }

    #[test]
    fn apply_mounts_the_binary_read_only_and_unsets_the_engine_init() {
        let mut body = ContainerCreateBody {
            cmd: Some(v(&["sh"])),
            host_config: Some(HostConfig {
                init: Some(true),
                binds: Some(v(&["/srv:/srv"])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let launch = InitLaunch::DevInit {
            binary: "/usr/bin/tini-static".into(),
            entrypoint: v(&["/dev/init", "--", "/bin/app"]),
            cmd: vec![],
        };
        apply(&mut body, &launch);
        assert_eq!(body.entrypoint, Some(v(&["/dev/init", "--", "/bin/app"])));
        assert_eq!(body.cmd, None);
        let host = body.host_config.clone().unwrap_or_default();
        assert_eq!(host.init, None);
        assert_eq!(host.binds, Some(v(&["/srv:/srv", "/usr/bin/tini-static:/dev/init:ro"])));

        let mut engine = ContainerCreateBody {
            host_config: Some(HostConfig { init: Some(true), ..Default::default() }),
            ..Default::default()
        };
        apply(&mut engine, &InitLaunch::Engine);
        assert_eq!(engine.host_config.and_then(|h| h.init), Some(true));
    }
}
