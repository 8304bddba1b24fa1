//! An agent that upper-cases its tasks' payloads (task type `upper`).
//!
//! Start a cluster (README, "Running a cluster"), then:
//! `cargo run -p hyperraft-client --example agent -- 127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103`.
//! It registers, submits one task to show the round trip, prints the
//! result, and serves tasks until Ctrl-C.

use std::time::Duration;

use hyperraft_client::agent::{run, AgentHandler, AgentOptions, AgentState, Assignment};
use hyperraft_client::proto::SubmitTaskRequest;
use hyperraft_client::{Client, ClientConfig};

struct Upper;

impl AgentHandler for Upper {
    async fn handle(&self, assignment: Assignment) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(&assignment.payload).map_err(|error| format!("not UTF-8: {error}"))?;
        Ok(text.to_uppercase().into_bytes())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints: Vec<String> = std::env::args().skip(1).collect();
    if endpoints.is_empty() {
        return Err("give the API addresses of the nodes, e.g. 127.0.0.1:7101".into());
    }
    let client = Client::connect(ClientConfig::new(endpoints)).await?;
    let (state, mut registered) = tokio::sync::watch::channel(AgentState::default());
    let agent = {
        let client = client.clone();
        tokio::spawn(async move {
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            run(&client, AgentOptions::new("upper", 8), Upper, state, stop).await
        })
    };
    let agent_id = registered.wait_for(|state| state.agent_id != 0).await?.agent_id;
    println!("agent {agent_id} registered");

    let request = SubmitTaskRequest {
        task_type: "upper".into(),
        payload: b"hello, agents".to_vec().into(),
        ..Default::default()
    };
    let task_id = client.submit_task(request).await?.task_id;
    let task = client.wait_task(task_id, Duration::from_secs(10)).await?;
    println!("task {task_id}: {:?} {:?}", task.status(), String::from_utf8_lossy(&task.output));
    println!("serving `upper` tasks until Ctrl-C");
    agent.await??;
    Ok(())
}
