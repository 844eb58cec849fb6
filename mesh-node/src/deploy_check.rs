//! The Kubernetes manifests in `deploy/` checked against this binary: the
//! container's args parse with mesh-node's own CLI, and the ports, probe
//! paths, mounts and the preStop hook agree with those args. (No
//! Kubernetes cluster runs here; this is what can be checked without one.)

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::Parser;
use serde::Deserialize;
use serde_norway::Value;

use crate::{Cli, Command};

const MANIFEST: &str = include_str!("../../deploy/kubernetes/mesh.yaml");
const DOCKERFILE: &str = include_str!("../../deploy/Dockerfile");

/// Example values of the downward-API variables the args refer to.
const POD: [(&str, &str); 3] = [
    ("POD_NAME", "mesh-0"),
    ("POD_IP", "10.1.2.3"),
    ("POD_NAMESPACE", "default"),
];

fn documents() -> Vec<Value> {
    serde_norway::Deserializer::from_str(MANIFEST)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn number(value: &Value) -> u16 {
    let n = value
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value:?}"));
    u16::try_from(n).expect("a port")
}

/// Named ports of a container or service: name -> (port, protocol).
fn ports(list: &Value, port_key: &str) -> BTreeMap<String, (u16, String)> {
    list.as_sequence()
        .expect("a port list")
        .iter()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
            (
                text(&p["name"]).to_string(),
                (number(&p[port_key]), protocol),
            )
        })
        .collect()
}

/// `$(VAR)` replaced by its example value, as the kubelet does; every
/// variable must be one the container defines.
fn expand(arg: &str, defined: &[&str]) -> String {
    let mut out = arg.to_string();
    for (name, value) in POD {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(!out.contains("$("), "undefined variable in {arg:?}");
    for (name, _) in POD {
        if arg.contains(&format!("$({name})")) {
            assert!(defined.contains(&name), "{name} used but not in env");
        }
    }
    out
}

#[test]
fn kubernetes_manifest_agrees_with_the_cli() {
    let documents = documents();
    let service = of_kind(&documents, "Service");
    let set = of_kind(&documents, "StatefulSet");
    let service_name = text(&service["metadata"]["name"]);
    assert_eq!(
        service["spec"]["clusterIP"].as_str(),
        Some("None"),
        "headless"
    );
    assert_eq!(text(&set["spec"]["serviceName"]), service_name);
    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    let env: Vec<&str> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| text(&e["name"]))
        .collect();
    let args: Vec<String> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| expand(text(a), &env))
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("mesh-node".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("the container's args do not parse:\n{e}"));
    let Command::Run(run) = cli.command else {
        panic!("the container does not `run` a node");
    };
    assert_eq!(run.name, "mesh-0", "the pod name is the node name");

    // Ports: the container's, the Service's and the args agree.
    let container_ports = ports(&container["ports"], "containerPort");
    let service_ports = ports(&service["spec"]["ports"], "port");
    assert_eq!(container_ports, service_ports);
    let quic = run.listen.port();
    assert_eq!(container_ports["quic"], (quic, "UDP".into()));
    assert_eq!(run.advertise, Some(SocketAddr::from(([10, 1, 2, 3], quic))));
    let admin = run.admin.expect("the probes need the admin API");
    assert!(
        admin.ip().is_unspecified(),
        "the kubelet probes the pod's address"
    );
    assert_eq!(container_ports["admin"], (admin.port(), "TCP".into()));

    // Seeds: the headless Service's name, with the QUIC port.
    let seeds = run.seeds_dns.as_deref().expect("--seeds-dns");
    assert_eq!(
        seeds,
        format!("{service_name}.default.svc.cluster.local:{quic}")
    );
    assert!(run.seeds.is_empty());

    // Probes on the admin port.
    for (probe, path) in [("livenessProbe", "/alive"), ("readinessProbe", "/ready")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(text(&get["path"]), path, "{probe}");
        assert_eq!(text(&get["port"]), "admin", "{probe}");
    }

    // Certificates and the token come from Secrets mounted where the args look.
    let mounts: BTreeMap<&str, &str> = container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|m| (text(&m["name"]), text(&m["mountPath"])))
        .collect();
    let secrets: BTreeMap<&str, &str> = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|v| (text(&v["name"]), text(&v["secret"]["secretName"])))
        .collect();
    let tls_dir = run.tls_dir.as_ref().expect("--tls-dir");
    assert_eq!(tls_dir.to_str(), Some(mounts["tls"]));
    assert!(secrets.contains_key("tls"));
    let token = run.admin_token_file.as_ref().expect("--admin-token-file");
    assert_eq!(
        token.parent().and_then(|p| p.to_str()),
        Some(mounts["admin-token"])
    );
    assert!(secrets.contains_key("admin-token"));

    // preStop: POST /leave with the token, on the admin port.
    let hook = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_sequence()
        .expect("preStop exec")
        .iter()
        .map(text)
        .collect::<Vec<_>>()
        .join(" ");
    for needed in [
        "-X POST".to_string(),
        format!("127.0.0.1:{}/leave", admin.port()),
        "Authorization: Bearer".to_string(),
        token.display().to_string(),
    ] {
        assert!(hook.contains(&needed), "preStop lacks {needed:?}: {hook}");
    }
}

#[test]
fn dockerfile_ships_mesh_node_on_the_manifest_ports() {
    assert!(DOCKERFILE.contains("cargo build --release --locked -p mesh-node"));
    assert!(DOCKERFILE.contains(r#"ENTRYPOINT ["/usr/local/bin/mesh-node"]"#));
    let documents = documents();
    let container =
        &of_kind(&documents, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
    for (_, (port, protocol)) in ports(&container["ports"], "containerPort") {
        let exposed = format!("{port}/{}", protocol.to_lowercase());
        assert!(DOCKERFILE.contains(&exposed), "EXPOSE lacks {exposed}");
    }
}

#[test]
fn the_admin_api_is_off_unless_asked_for_and_then_on_loopback() {
    let admin = |extra: &[&str]| {
        let base = [
            "mesh-node",
            "run",
            "--name",
            "n1",
            "--listen",
            "127.0.0.1:7001",
        ];
        let args = base.iter().chain(extra).chain(&["--insecure-dev-tls"]);
        let Command::Run(run) = Cli::try_parse_from(args).expect("parses").command else {
            panic!("not run");
        };
        run.admin
    };
    assert_eq!(admin(&[]), None, "no admin API unless asked for");
    let default = admin(&["--admin"]).expect("--admin alone");
    assert!(default.ip().is_loopback(), "{default}");
    assert_eq!(
        admin(&["--admin", "0.0.0.0:9000"]),
        Some("0.0.0.0:9000".parse().unwrap())
    );
}
