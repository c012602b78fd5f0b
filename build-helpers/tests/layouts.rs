//! Every way of naming a proto and its include directory that protoc
//! accepts works here too: `.`, `./`, trailing slashes, absolute and
//! relative mixed. One test (it changes the working directory, which the
//! whole process shares), in its own binary.

use std::path::{Path, PathBuf};

const GREETER: &str = r#"syntax = "proto3";
package helloworld;
import "common.proto";
service Greeter { rpc SayHello (HelloRequest) returns (common.Reply); }
message HelloRequest { string name = 1; }
"#;

const COMMON: &str = r#"syntax = "proto3";
package common;
message Reply { string message = 1; }
"#;

fn compile(out: &Path, proto: impl AsRef<Path>, include: impl AsRef<Path>) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(out);
    grpc_h3_build::configure()
        .out_dir(out)
        .emit_rerun_if_changed(false)
        .compile_protos(&[proto], &[include])
}

fn generated(out: &Path) -> String {
    std::fs::read_to_string(out.join("helloworld.rs")).expect("helloworld.rs written")
}

#[test]
fn every_layout_protoc_accepts_compiles() {
    let root: PathBuf =
        std::env::temp_dir().join(format!("grpc-h3-layouts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("proto")).unwrap();
    for dir in [root.clone(), root.join("proto")] {
        std::fs::write(dir.join("helloworld.proto"), GREETER).unwrap();
        std::fs::write(dir.join("common.proto"), COMMON).unwrap();
    }
    let out = root.join("out");
    std::env::set_current_dir(&root).unwrap();

    let layouts: [(PathBuf, PathBuf); 8] = [
        ("helloworld.proto".into(), ".".into()),
        ("./helloworld.proto".into(), ".".into()),
        ("helloworld.proto".into(), "./".into()),
        ("proto/helloworld.proto".into(), "proto".into()),
        ("proto/helloworld.proto".into(), "./proto".into()),
        ("proto/helloworld.proto".into(), "proto/".into()),
        ("./proto/helloworld.proto".into(), "proto".into()),
        (root.join("proto/helloworld.proto"), "proto".into()),
    ];
    for (proto, include) in &layouts {
        compile(&out, proto, include)
            .unwrap_or_else(|e| panic!("{} with {}: {e}", proto.display(), include.display()));
        assert!(
            generated(&out).contains("greeter_client"),
            "{}",
            proto.display()
        );
    }
    // Relative proto, absolute include.
    compile(&out, "proto/helloworld.proto", root.join("proto")).unwrap();
    assert!(generated(&out).contains("greeter_server"));

    // A proto outside the include directory: a clear error naming both.
    let err = compile(&out, "helloworld.proto", "proto")
        .unwrap_err()
        .to_string();
    assert!(err.contains("helloworld.proto"), "{err}");
    assert!(err.contains("is not inside any include directory"), "{err}");
    assert!(
        err.contains(&root.join("proto").display().to_string()),
        "{err}"
    );

    // A missing file names the path and where relative paths start.
    let err = compile(&out, "nope.proto", ".").unwrap_err().to_string();
    assert!(err.contains("nope.proto cannot be read"), "{err}");
    assert!(err.contains("relative to the crate root"), "{err}");

    std::env::set_current_dir(std::env::temp_dir()).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
