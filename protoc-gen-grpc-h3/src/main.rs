//! protoc plugin for grpc-h3.
//!
//! Not implemented yet: tracked by the code-generation issue. Running it
//! reports that plainly and exits with an error instead of pretending.

fn main() {
    eprintln!("protoc-gen-grpc-h3: not implemented yet (see the code-generation issue)");
    std::process::exit(1);
}
