//! `hyperraft token`: bearer tokens for the gRPC API. A node's
//! configuration holds only each token's SHA-256 (`[[api.tokens]]`); the
//! token itself goes to the client (`hyperraft ctl --token`,
//! `ClientConfig::token`).

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyperraft_api::auth::{token_sha256_hex, TOKEN_BYTES_MAX};
use hyperraft_api::Role;
use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes in a new token: 256 bits, beyond any guessing.
const TOKEN_RANDOM_BYTES: usize = 32;
/// Marks a hyperraft token, so that secret scanners and people recognise one.
const TOKEN_PREFIX: &str = "hrt_";

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Print the SHA-256 (hex) of the token read from stdin: the `sha256`
    /// of its `[[api.tokens]]` entry.
    Hash,
    /// Generate a random token: print it once, then the `[[api.tokens]]`
    /// entry (with its hash, never the token) for the nodes' configuration.
    New {
        /// The token's name, shown in logs and errors.
        #[arg(long)]
        name: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        role: String,
    },
}

pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    match &args.command {
        TokenCommand::Hash => {
            let mut input = String::new();
            std::io::stdin().take(TOKEN_BYTES_MAX as u64 + 2).read_to_string(&mut input).context("read stdin")?;
            println!("{}", hash_of_input(&input)?);
        }
        TokenCommand::New { name, role } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let token = new_token()?;
            println!("token: {token}");
            println!("# Give the token to its client; the nodes' configuration keeps only its hash:");
            print!("{}", config_entry(name, role, &token_sha256_hex(&token)));
        }
    }
    Ok(())
}

/// The hash of a token typed or piped in: surrounding whitespace (the
/// newline `echo` adds) is not part of it.
fn hash_of_input(input: &str) -> anyhow::Result<String> {
    let token = input.trim();
    anyhow::ensure!(!token.is_empty(), "no token on stdin");
    anyhow::ensure!(token.len() <= TOKEN_BYTES_MAX, "a token is at most {TOKEN_BYTES_MAX} bytes");
    anyhow::ensure!(token.bytes().all(|byte| byte.is_ascii_graphic()), "a token is printable ASCII without spaces");
    Ok(token_sha256_hex(token))
}

/// `hrt_` and 64 hex digits from the operating system's random source.
fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES);
    token.push_str(TOKEN_PREFIX);
    for byte in bytes {
        token.push_str(&format!("{byte:02x}"));
    }
    Ok(token)
}

fn config_entry(name: &str, role: Role, sha256: &str) -> String {
    format!("[[api.tokens]]\nname = {name:?}\nrole = \"{role}\"\nsha256 = \"{sha256}\"\n")
}

#[cfg(test)]
mod tests;
