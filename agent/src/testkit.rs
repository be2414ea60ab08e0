//! Test support: the locally built busybox image for Docker tests, and deadline waits.

use crate::runtime::{ContainerRuntime, DockerRuntime, LABEL_INSTANCE_ID};
use std::future::Future;
use std::time::Duration;

/// Built by [`ensure_test_image`] with `docker import` from the host's static busybox.
pub const TEST_IMAGE: &str = "berth-test/busybox:1";

/// Connects to the local Docker daemon and makes sure [`TEST_IMAGE`] exists; `None` (with the
/// reason printed) when there is no daemon, so Docker tests skip — unless
/// `BERTH_REQUIRE_DOCKER=1` (set by `.ci/run`), where a missing daemon fails the test.
pub async fn docker_with_test_image() -> Option<DockerRuntime> {
    let rt = match DockerRuntime::connect(None).await {
        Ok(rt) => rt,
        Err(e) => return skip(&format!("no Docker daemon answers ({e})")),
    };
    static BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = BUILD.lock().await;
    match rt.image_present(TEST_IMAGE).await {
        Ok(true) => return Some(rt),
        Ok(false) => {}
        Err(e) => return skip(&format!("Docker does not answer image queries ({e})")),
    }
    match tokio::task::spawn_blocking(build_test_image).await {
        Ok(Ok(())) => Some(rt),
        Ok(Err(e)) => panic!("cannot build {TEST_IMAGE}: {e}"),
        Err(e) => panic!("image build task failed: {e}"),
    }
}

fn skip(reason: &str) -> Option<DockerRuntime> {
    if std::env::var("BERTH_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("BERTH_REQUIRE_DOCKER=1 but {reason}");
    }
    eprintln!("SKIP: {reason} (set BERTH_REQUIRE_DOCKER=1 to make this an error)");
    None
}

/// rootfs = /bin/busybox + applet symlinks + /www/index.html, imported as [`TEST_IMAGE`].
fn build_test_image() -> Result<(), String> {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("bin")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.join("www")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.join("tmp")).map_err(|e| e.to_string())?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .map_err(|e| format!("/bin/busybox: {e}"))?;
    for applet in ["sh", "httpd", "sleep", "echo", "cat", "true", "false", "ls", "wget", "kill"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .map_err(|e| e.to_string())?;
    }
    std::fs::write(root.join("www/index.html"), "berth ok\n").map_err(|e| e.to_string())?;
    let tar = Command::new("tar")
        .args(["-C"])
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tar: {e}"))?;
    let stdout = tar.stdout.ok_or("tar: no stdout")?;
    let out = Command::new("docker")
        .args(["import", "--change", "CMD [\"/bin/sh\"]", "-", TEST_IMAGE])
        .stdin(stdout)
        .output()
        .map_err(|e| format!("docker import: {e}"))?;
    if !out.status.success() {
        return Err(format!("docker import: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// Removes every container labelled with `instance_id` (test cleanup).
pub async fn remove_instance_containers(rt: &dyn ContainerRuntime, instance_id: &str) {
    if let Ok(list) = rt.list(LABEL_INSTANCE_ID, instance_id).await {
        for c in list {
            let _ = rt.stop(&c.id, Duration::from_secs(0)).await;
            let _ = rt.remove(&c.id).await;
        }
    }
}

/// A unique id for test instances (several test runs may share one Docker engine).
pub fn unique_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Polls `f` until it returns `Some`, failing the test with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
