//! A 3-node (or n-node) NATS cluster with JetStream on loopback ports, for tests that kill
//! nodes: each node's storage survives its restart, as a real server's does.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{free_port, server_binary, unique_name, wait_for_port};

/// One node: its ports, storage and process.
struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The cluster; nodes are stopped and their storage removed when it is dropped.
pub struct NatsCluster {
    nodes: Vec<Node>,
    cluster_name: String,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until each listens.
    pub fn start(size: usize) -> Self {
        let cluster_name = unique_name("chaukas-cluster");
        let nodes = (0..size)
            .map(|index| {
                let dir = std::env::temp_dir().join(format!("{cluster_name}-n{index}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                Node {
                    name: format!("n{index}"),
                    client_port: free_port(),
                    cluster_port: free_port(),
                    dir,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self {
            nodes,
            cluster_name,
        };
        for index in 0..size {
            cluster.restart(index);
        }
        cluster
    }

    /// Every node's client URL, comma-separated, as services take them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the node whose server name is `name` (as JetStream names a leader).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// SIGKILLs node `index` (a crash, not a shutdown) and waits for it to exit.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its ports and storage, waiting until it listens.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        let routes = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, node)| format!("nats://127.0.0.1:{}", node.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let node = &self.nodes[index];
        let child = Command::new(server_binary("nats-server"))
            .args(["-js", "-a", "127.0.0.1", "-n", &node.name])
            .args(["-p", &node.client_port.to_string()])
            .args(["--cluster_name", &self.cluster_name])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.cluster_port),
            ])
            .args(["--routes", &routes])
            .arg("-sd")
            .arg(&node.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (make test installs it)");
        let port = node.client_port;
        self.nodes[index].child = Some(child);
        wait_for_port(port);
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
            let _ = std::fs::remove_dir_all(&self.nodes[index].dir);
        }
    }
}
