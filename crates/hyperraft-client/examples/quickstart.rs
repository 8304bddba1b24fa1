//! Quickstart: starts an embedded 3-node cluster with its gRPC API on
//! loopback, then uses the SDK against it: accounts and transfers (batched
//! and auto-batched), put/get, and a watch.
//!
//! Run with `cargo run -p hyperraft-client --example quickstart`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyperraft_api::ApiConfig;
use hyperraft_client::wire::{AccountRecord, TransferRecord};
use hyperraft_client::{prefix_end, Client, ClientConfig, CreateTransferResult};
use hyperraft_node::{EmbeddedCluster, Node, RaftTuning};
use tokio_stream::StreamExt;

fn account(id: u128) -> AccountRecord {
    AccountRecord { id: id.into(), ledger: 1.into(), code: 1.into(), ..AccountRecord::default() }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> TransferRecord {
    TransferRecord {
        id: id.into(),
        debit_account_id: debit.into(),
        credit_account_id: credit.into(),
        amount: amount.into(),
        ledger: 1.into(),
        code: 1.into(),
        ..TransferRecord::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An embedded cluster: three nodes in this process, each with its API on a loopback port.
    let dir = tempfile::tempdir()?;
    let setup = EmbeddedCluster::new(dir.path(), 3, RaftTuning::default(), 1)?;
    let mut nodes = BTreeMap::new();
    for (&id, config) in setup.configs() {
        nodes.insert(id, Arc::new(Node::start(config.clone()).await?));
    }
    let mut listeners = BTreeMap::new();
    for &id in nodes.keys() {
        listeners.insert(id, tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    }
    let addresses: BTreeMap<u64, String> =
        listeners.iter().map(|(id, listener)| (*id, listener.local_addr().unwrap().to_string())).collect();
    let api = ApiConfig { api_addresses: addresses.clone(), ..ApiConfig::default() };
    let mut servers = Vec::new();
    for (id, listener) in listeners {
        servers.push(hyperraft_api::serve_on(nodes[&id].clone(), listener, api.clone())?);
    }
    for node in nodes.values() {
        hyperraft_node::wait_for_leader(node, std::time::Duration::from_secs(30)).await.ok_or("no leader")?;
    }

    // The SDK: one client for the whole cluster.
    let client = Client::connect(ClientConfig::new(addresses.values().cloned())).await?;
    println!("connected; leader at {:?}", client.leader_address());

    let failures = client.create_accounts(&[account(1), account(2)]).await?;
    println!("created accounts 1 and 2 (failures: {failures:?})");
    let failures = client.create_transfers(&[transfer(100, 1, 2, 10), transfer(101, 2, 1, 4)]).await?;
    println!("created a batch of 2 transfers (failures: {failures:?})");

    // Single transfers from many tasks share batches.
    let tasks: Vec<_> = (0..100u128)
        .map(|index| {
            let client = client.clone();
            tokio::spawn(async move { client.create_transfer(transfer(1_000 + index, 1, 2, 1)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await??, CreateTransferResult::Ok);
    }
    let stats = client.stats();
    println!("100 single transfers went out in {} batches", stats.transfer_batches);
    for found in client.lookup_accounts(&[1, 2]).await? {
        println!(
            "account {}: debits {} credits {}",
            found.id.get(),
            found.debits_posted.get(),
            found.credits_posted.get()
        );
    }

    let mut watch = client.watch("greeting/", prefix_end(b"greeting/"), 0).await?;
    client.put("greeting/en", "hello").await?;
    client.put("greeting/fr", "bonjour").await?;
    let value = client.get("greeting/en").await?.map(|pair| pair.value);
    println!("get greeting/en = {value:?}");
    for _ in 0..2 {
        let event = watch.next().await.ok_or("watch ended")??;
        let pair = event.kv.unwrap_or_default();
        println!("watch: revision {} {:?} = {:?}", pair.mod_revision, pair.key, pair.value);
    }

    drop(watch);
    drop(client);
    for server in servers {
        server.shutdown().await?;
    }
    for (_, mut node) in nodes {
        // Connection tasks may hold a node a moment after its server stopped.
        let node = loop {
            match Arc::try_unwrap(node) {
                Ok(node) => break node,
                Err(shared) => node = shared,
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        node.shutdown().await?;
    }
    Ok(())
}
