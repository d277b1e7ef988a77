//! `keygate-echo --listen ADDR [--name NAME]`: the echo upstream (see `keygate::echo`). Prints
//! `listening on ADDR` once bound (port 0 picks a free port), then serves until killed.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "An HTTP upstream that answers every request with what it saw, as JSON")]
struct Cli {
    /// Address to listen on, e.g. 127.0.0.1:9001 (port 0: any free port).
    #[arg(long)]
    listen: String,
    /// Name reported in the "upstream" field of every answer.
    #[arg(long, default_value = "echo")]
    name: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&cli.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.listen))?;
        println!("listening on {}", listener.local_addr()?);
        use std::io::Write;
        std::io::stdout().flush()?;
        keygate::echo::serve(listener, cli.name).await?;
        Ok(())
    })
}
