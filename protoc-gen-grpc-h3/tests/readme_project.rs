//! The README's "Use it in your project", the way a new user follows it: a
//! new cargo project outside this workspace, made of the README's own
//! snippets (the checkout reached as `../grpc-h3`, as the README says),
//! built offline against this checkout and run: one real call in one
//! process, then the server and client binaries in two processes talking
//! through the development certificate. Then "With protoc directly": the
//! README's protoc command with this plugin, and the generated file
//! included as the README shows. (It lives here for the plugin binary.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The fenced blocks that follow `<!-- {marker}: NAME -->` lines.
fn snippets(readme: &str, marker: &str) -> Vec<(String, String)> {
    let prefix = format!("<!-- {marker}: ");
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().expect("a code block after the marker");
        assert!(fence.starts_with("```"), "{name}: {fence}");
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push((name.to_owned(), body.join("\n") + "\n"));
    }
    out
}

fn snippet<'a>(all: &'a [(String, String)], name: &str) -> &'a str {
    &all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the README has no {name} snippet"))
        .1
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Writes `files` into a new directory `dir`.
fn project(dir: &Path, files: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(dir);
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

fn cargo_build(dir: &Path, target: &Path) {
    run(
        Command::new(env!("CARGO"))
            .args(["build", "--offline", "--quiet"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target)
            .env_remove("RUSTFLAGS"),
        &format!("cargo build in {}", dir.display()),
    );
}

#[test]
fn the_readme_project_builds_and_makes_real_calls() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(checkout.join("README.md")).unwrap();
    let files = snippets(&readme, "readme-project");

    // Outside the workspace, next to a `grpc-h3` that is this checkout.
    let root: PathBuf = std::env::temp_dir().join(format!("grpc-h3-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(checkout, root.join("grpc-h3")).unwrap();
    let app = root.join("hello-h3");
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Cargo.toml",
            "helloworld.proto",
            "build.rs",
            "src/main.rs",
            "src/bin/server.rs",
            "src/bin/client.rs"
        ]
    );
    project(
        &app,
        &files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect::<Vec<_>>(),
    );
    // The checkout's lock file pins what is in the local registry, so the
    // build needs no network.
    std::fs::copy(checkout.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    let target = checkout.join("target/readme-project");
    cargo_build(&app, &target);

    let bin = |name: &str| target.join("debug").join(name);
    let stdout = run(&mut Command::new(bin("hello-h3")), "hello-h3");
    assert_eq!(stdout.trim(), "Hello you!");

    // Two processes: the server, then the client.
    let mut server = Command::new(bin("server"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listening = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        listening.starts_with("listening on udp://127.0.0.1:50051"),
        "{listening}"
    );
    let client = Command::new(bin("client")).output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(String::from_utf8_lossy(&client.stdout).trim(), "Hello you!");

    // A second build is a no-op: the build script watches the proto, not
    // the crate's directory (which the build itself writes into).
    let again = Command::new(env!("CARGO"))
        .args(["build", "--offline", "-v"])
        .current_dir(&app)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("Fresh hello-h3"), "{log}");
    assert!(!log.contains("Compiling hello-h3"), "{log}");

    // With protoc directly: the README's commands, this plugin on PATH.
    let plugin_files = snippets(&readme, "readme-plugin");
    let shell = snippet(&plugin_files, "shell");
    let module = snippet(&plugin_files, "module");
    let plain = root.join("hello-h3-plugin");
    let manifest =
        snippet(&files, "Cargo.toml").replace("name = \"hello-h3\"", "name = \"hello-h3-plugin\"");
    let manifest = manifest
        .split("[build-dependencies]")
        .next()
        .unwrap()
        .to_owned();
    let main = snippet(&files, "src/main.rs");
    let include = "mod helloworld {\n    grpc_h3::include_proto!(\"helloworld\"); // the protobuf package\n}\n";
    assert!(main.starts_with(include), "{main}");
    let main = main.replacen(include, module, 1);
    project(
        &plain,
        &[
            ("Cargo.toml", &manifest),
            ("helloworld.proto", snippet(&files, "helloworld.proto")),
            ("src/main.rs", &main),
        ],
    );
    std::fs::copy(checkout.join("Cargo.lock"), plain.join("Cargo.lock")).unwrap();
    let plugin_dir = Path::new(env!("CARGO_BIN_EXE_protoc-gen-grpc-h3"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in shell.lines() {
        let command = line.split('#').next().unwrap().trim();
        if command.starts_with("cargo install") {
            continue; // the plugin is on PATH already: this test built it
        }
        let mut words = command.split_whitespace();
        let program = match words.next().unwrap() {
            "protoc" => protoc_bin_vendored::protoc_bin_path().unwrap(),
            other => PathBuf::from(other),
        };
        run(
            Command::new(program)
                .args(words)
                .current_dir(&plain)
                .env("PATH", &path),
            command,
        );
    }
    assert!(plain.join("src/gen/helloworld.rs").is_file());
    cargo_build(&plain, &target);
    let stdout = run(&mut Command::new(bin("hello-h3-plugin")), "hello-h3-plugin");
    assert_eq!(stdout.trim(), "Hello you!");
    let _ = std::fs::remove_dir_all(&root);
}
