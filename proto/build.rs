fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every .proto in proto/ (all in package berth.v1): berth.proto plus one file per area
    // (security, acl, secrets), so each area's services live in their own file.
    let mut files: Vec<String> = std::fs::read_dir("proto")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".proto"))
        .map(|n| format!("proto/{n}"))
        .collect();
    files.sort();
    let fds = protox::compile(&files, ["proto"])?;
    // Messages carrying secret values get a redacting Debug (proto/src/secrets.rs).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .skip_debug([
            "berth.v1.SecretEnvironmentVariable",
            "berth.v1.PutSecretRequest",
            // Join token secrets (proto/src/security.rs).
            "berth.v1.JoinClusterRequest",
            "berth.v1.CreateJoinTokenReply",
            "berth.v1.JoinClusterReply",
            // The one reply carrying an API token secret (proto/src/acl.rs).
            "berth.v1.CreateAclTokenReply",
        ])
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
