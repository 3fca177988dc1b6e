//! The compose backend against a real Docker-compatible engine and Compose CLI (tests/env):
//! `runbook run` on fixture runbooks, each test with its own project name, port and images.

use crate::backend_env;
use crate::common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use backend_env::{fixture, run, unique, TestEnv};

/// Takes the project down and removes its images when the test ends, passed or not.
struct ProjectGuard {
    env: TestEnv,
    project: String,
    image: String,
}

impl Drop for ProjectGuard {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = Command::new("docker")
                .args(args)
                .envs(&self.env.vars)
                .stdin(std::process::Stdio::null())
                .output();
        };
        docker(&["compose", "-p", &self.project, "down", "--remove-orphans"]);
        if !self.image.is_empty() {
            for tag in ["v1", "v2"] {
                docker(&["rmi", "-f", &format!("{}:{tag}", self.image)]);
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The body of `GET /` on the port, retried while the server starts.
fn http_get(port: u16, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(body) if body.contains("200") => return body,
            other if start.elapsed() > within => {
                panic!("nothing answers on 127.0.0.1:{port}: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Held by the tests that build images: podman 4.3 can lose a layer when two builds share
/// its store at once ("layer not known", "error in copier subprocess"), so builds take turns.
static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn builds_in_turn() -> std::sync::MutexGuard<'static, ()> {
    BUILDS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn an_unhealthy_release_is_rolled_back_to_the_previous_image() {
    let Some(env) = backend_env::compose() else {
        return;
    };
    let _turn = builds_in_turn();
    let project = unique("rbt");
    let image = format!("localhost/{project}-web");
    let _guard = ProjectGuard {
        env: env.clone(),
        project: project.clone(),
        image: image.clone(),
    };
    let port = free_port();
    let work = tempfile::tempdir().expect("tempdir");
    let env_file = work.path().join("stack.env");
    std::fs::write(&env_file, format!("WEB_IMAGE={image}\nWEB_PORT={port}\n")).expect("env file");
    let compose_file = fixture("compose/stack/compose.yaml");
    let compose_before = std::fs::read(&compose_file).expect("compose file");
    let port_text = port.to_string();
    let inputs = [
        ("project", project.as_str()),
        ("env_file", env_file.to_str().expect("utf-8")),
        ("image", image.as_str()),
        ("port", port_text.as_str()),
    ];

    let journals = work.path().join("runs");
    let r = run(
        &env,
        &fixture("compose/rollback.yaml"),
        &journals,
        &inputs,
        &[],
        &[],
    );
    assert_ne!(r.code, 0, "the health check fails the run\n{}", r.log());
    for step in ["up", "serves_v1", "build_v2", "roll", "serves_v2", "ps"] {
        assert_eq!(r.outcome(step), "succeeded", "{step}\n{}", r.log());
    }
    assert_eq!(r.outcome("healthy"), "failed");
    assert!(
        r.error("healthy").contains("returned 404"),
        "{}",
        r.error("healthy")
    );

    // set_image recorded the previous image and ran the new one.
    assert_eq!(r.capture("roll", "previous"), format!("{image}:v1"));
    let roll = r.result("roll");
    assert_eq!(roll["previous_image"], format!("{image}:v1"));
    let override_file = roll["override_file"]
        .as_str()
        .expect("an override file")
        .to_string();
    assert_eq!(r.capture("ps", "web_image"), format!("{image}:v2"));
    assert_eq!(r.capture("ps", "web_state"), "running");
    assert_eq!(r.capture("ps", "worker_state"), "running");
    assert_eq!(r.capture("ps", "containers"), 2);

    // The rollback put v1 back and removed the override; the user's file is untouched.
    assert_eq!(r.undo("roll")["ok"], true, "{}", r.log());
    assert!(
        !std::path::Path::new(&override_file).exists(),
        "setting the image back to the compose file's removes the override"
    );
    assert_eq!(
        std::fs::read(&compose_file).expect("compose file"),
        compose_before
    );
    assert!(http_get(port, Duration::from_secs(10)).contains("hello v1"));

    // Inspect and take the stack down (compose finds the file itself there).
    let t = run(
        &env,
        &fixture("compose/teardown.yaml"),
        &work.path().join("runs-teardown"),
        &inputs[..2],
        &["down=yes"],
        &[],
    );
    t.assert_ok();
    assert!(
        t.result("logs")["stdout"].is_string(),
        "logs returns the output\n{}",
        t.log()
    );
    assert_eq!(t.capture("ps", "web_state"), "running");
    assert_eq!(t.capture("ps", "worker_state"), "exited");
    assert_eq!(t.capture("after", "containers"), 0);
}

#[test]
fn compose_failures_name_the_command_and_quote_compose() {
    let Some(env) = backend_env::compose() else {
        return;
    };
    let project = unique("rbt-fail");
    let _guard = ProjectGuard {
        env: env.clone(),
        project: project.clone(),
        image: String::new(),
    };
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("fail.yaml");
    std::fs::write(
        work.path().join("compose.yaml"),
        "services:\n  app:\n    image: localhost/busybox:test\n    command: [sleep, '600']\n    stop_signal: SIGKILL\n",
    )
    .expect("write");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{name: fail, title: fail}}
backends:
  s:
    compose: {{project: {project}}}
steps:
  - id: no_such_service
    continue_on_failure: true
    compose:
      set_image: {{service: db, image: "localhost/busybox:test"}}
  - id: unpullable
    continue_on_failure: true
    compose:
      pull: {{}}
  - id: stop_nothing
    compose:
      stop: {{}}
  - id: attached
    timeout: 3s
    compose:
      up: {{detach: false}}
"#
        ),
    )
    .expect("write");
    let r = run(&env, &file, &work.path().join("runs"), &[], &[], &[]);
    assert_eq!(r.outcome("no_such_service"), "failed");
    assert!(
        r.error("no_such_service")
            .contains("the compose project has no service `db`; its services: app"),
        "{}",
        r.error("no_such_service")
    );
    // Nothing can be pulled here: compose's own reason is quoted after the command.
    let e = r.error("unpullable");
    assert!(
        e.starts_with("compose.pull: `docker compose pull` exited with code"),
        "{e}"
    );
    assert_eq!(r.outcome("stop_nothing"), "succeeded", "{}", r.log());
    // An attached `up` never ends by itself: the timeout kills compose's process group.
    let e = r.error("attached");
    assert!(
        e.starts_with("compose.up: `docker compose up` timed out after 3")
            && e.contains("process group was killed"),
        "{e}"
    );
    assert!(e.ends_with("its process group was killed"), "{e}");

    // A `command` that does not exist is a clear, non-retryable failure.
    let file2 = work.path().join("cli.yaml");
    std::fs::write(
        &file2,
        format!(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{name: cli, title: cli}}\n\
             backends:\n  s:\n    compose: {{project: {project}, command: [/no/such/docker-compose]}}\n\
             steps:\n  - id: ps\n    compose:\n      ps: {{}}\n"
        ),
    )
    .expect("write");
    let r = run(&env, &file2, &work.path().join("runs2"), &[], &[], &[]);
    assert_ne!(r.code, 0);
    let e = r.error("ps");
    assert!(e.contains("cannot start `/no/such/docker-compose`"), "{e}");
}

/// The built-in `runbooks/compose-rollback.yaml`, unchanged, against the real engine (its drills
/// run the same file against the simulated world): a service running a bad v2 goes back to v1
/// and answers its health check; a known-good image that cannot start leaves v2 running.
#[test]
fn the_built_in_compose_rollback_runbook_rolls_back_a_real_service() {
    let Some(env) = backend_env::compose() else {
        return;
    };
    let _turn = builds_in_turn();
    let project = unique("rbt-builtin");
    let image = format!("localhost/{project}-web");
    let broken = format!("{image}-broken");
    let _guard = ProjectGuard {
        env: env.clone(),
        project: project.clone(),
        image: image.clone(),
    };
    let _broken_guard = ProjectGuard {
        env: env.clone(),
        project: project.clone(),
        image: broken.clone(),
    };
    let port = free_port();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("stack");
    std::fs::create_dir_all(dir.join("web")).expect("stack dir");
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM localhost/busybox:test\nARG VERSION=v1\nARG HEALTHY=yes\n\
         RUN mkdir -p /www && echo \"hello $VERSION\" > /www/index.html \\\n \
         && if [ \"$HEALTHY\" = yes ]; then echo '{\"status\": \"ok\"}' > /www/health; fi\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .expect("Dockerfile");
    std::fs::write(
        dir.join("web/Dockerfile.broken"),
        "FROM localhost/busybox:test\nCMD [\"sh\", \"-c\", \"echo configuration invalid; exit 3\"]\n",
    )
    .expect("Dockerfile.broken");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  web:\n    image: ${WEB_IMAGE}\n    ports: [\"127.0.0.1:${WEB_PORT}:8080\"]\n    stop_signal: SIGKILL\n",
    )
    .expect("compose.yaml");
    // The bad release is what the compose file deploys now.
    std::fs::write(
        dir.join(".env"),
        format!("WEB_IMAGE={image}:v2\nWEB_PORT={port}\n"),
    )
    .expect(".env");
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .current_dir(&dir)
            .envs(&env.vars)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&["build", "-q", "-t", &format!("{image}:v1"), "web"]);
    docker(&[
        "build",
        "-q",
        "-t",
        &format!("{image}:v2"),
        "--build-arg",
        "VERSION=v2",
        "--build-arg",
        "HEALTHY=no",
        "web",
    ]);
    docker(&[
        "build",
        "-q",
        "-t",
        &format!("{broken}:v1"),
        "-f",
        "web/Dockerfile.broken",
        "web",
    ]);
    docker(&["compose", "-p", &project, "up", "-d", "--wait"]);
    assert!(http_get(port, Duration::from_secs(10)).contains("hello v2"));

    let builtin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/compose-rollback.yaml");
    let service_url = format!("http://127.0.0.1:{port}");
    let token = "compose-token-for-the-builtin-test";
    let inputs = |known_good: String| -> Vec<(&'static str, String)> {
        vec![
            (
                "project_directory",
                dir.to_str().expect("utf-8").to_string(),
            ),
            ("project", project.clone()),
            ("service", "web".to_string()),
            ("known_good_image", known_good),
            // Built on this host: there is no registry to pull from.
            ("pull", "false".to_string()),
            ("service_url", service_url.clone()),
            ("smoke_path", String::new()),
        ]
    };

    // A known-good image that cannot start: the run fails and v2 keeps running.
    let failing = inputs(format!("{broken}:v1"));
    let r = run(
        &env,
        &builtin,
        &work.path().join("runs-broken"),
        &pairs(&failing),
        &["approve=yes", "escalate=done"],
        &[("SERVICE_API_TOKEN", token)],
    );
    assert_ne!(r.code, 0, "{}", r.log());
    assert_eq!(r.outcome("up"), "failed", "{}", r.log());
    assert_eq!(r.undo("pin")["ok"], true, "{}", r.log());
    assert_eq!(r.outcome("restore"), "succeeded", "{}", r.log());
    assert!(http_get(port, Duration::from_secs(10)).contains("hello v2"));

    // The real rollback.
    let good = inputs(format!("{image}:v1"));
    let r = run(
        &env,
        &builtin,
        &work.path().join("runs"),
        &pairs(&good),
        &["approve=yes", "tell=done", "persist=done", "record=done"],
        &[("SERVICE_API_TOKEN", token)],
    );
    r.assert_ok();
    assert_eq!(r.capture("current", "image"), format!("{image}:v2"));
    assert_eq!(r.capture("running", "image"), format!("{image}:v1"));
    assert_eq!(r.capture("running", "state"), "running");
    assert!(http_get(port, Duration::from_secs(10)).contains("hello v1"));
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Issue 11, item 17: a runbook given as a bare file name (`runbook run rb.yaml`, run from its
/// directory) has the empty path as its parent; compose steps ran there and failed with
/// "cannot start `docker`: No such file or directory". They run in the current directory.
#[test]
fn a_runbook_named_by_a_bare_file_name_runs_compose_in_its_directory() {
    let Some(env) = backend_env::compose() else {
        return;
    };
    let project = unique("rbt-bare");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        work.path().join("compose.yaml"),
        "services:\n  app:\n    image: localhost/busybox:test\n    command: [sleep, '600']\n",
    )
    .expect("compose file");
    std::fs::write(
        work.path().join("rb.yaml"),
        format!(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{name: bare, title: bare}}\n\
             backends:\n  s:\n    compose: {{project: {project}}}\n\
             steps:\n  - id: ps\n    compose:\n      ps: {{}}\n"
        ),
    )
    .expect("runbook");
    let mut cmd = common::runbook(work.path());
    cmd.env_remove("KUBECONFIG").envs(&env.vars).args([
        "run",
        "rb.yaml",
        "--non-interactive",
        "--reason",
        "item 17",
        "--journal-dir",
        "runs",
    ]);
    let out = cmd.output().expect("runs");
    let (stdout, stderr) = common::text(&out);
    let ev = common::events(&common::journal_path(&work.path().join("runs")));
    let finished = common::of_kind(&ev, "step_finished");
    assert_eq!(
        finished[0]["outcome"], "succeeded",
        "{:?}\n{stdout}\n{stderr}",
        finished[0]["error"]
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
}
