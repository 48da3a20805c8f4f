//! `ghnq`: the GHN-QAT edge SDK's command-line tool.

mod cli;

fn main() -> anyhow::Result<()> {
    cli::main()
}
