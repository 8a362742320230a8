//! `etl secrets`: make keys, encrypt files, and look at secrets without
//! printing them.

use std::io::Write;
use std::path::PathBuf;

use age::secrecy::{ExposeSecret, SecretString};

use super::{load_project, Context};
use crate::exit::Exit;
use crate::secrets::{encrypt_to, encrypt_with_passphrase, Key, SecretStore};
use crate::template::EnvMode;

/// `etl secrets`.
#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Print a new X25519 identity on stdout; its recipient goes to stderr.
    Keygen,
    /// Encrypt a file to recipients or with a passphrase; the age file goes
    /// to stdout.
    Encrypt {
        /// The plaintext file (`-` for stdin).
        file: PathBuf,
        /// An `age1…` recipient; repeat for several.
        #[arg(
            long = "recipient",
            short = 'r',
            required_unless_present = "passphrase"
        )]
        recipients: Vec<String>,
        /// Encrypt with the passphrase in `ETL_AGE_PASSPHRASE` instead.
        #[arg(long, conflicts_with = "recipients")]
        passphrase: bool,
    },
    /// List the project's secrets: names, files and how they are encrypted.
    List,
    /// Decrypt one secret and show it redacted (or in full with `--reveal`).
    Show {
        /// The secret's name.
        name: String,
        /// Print the plaintext.
        #[arg(long)]
        reveal: bool,
    },
}

pub fn run(ctx: &Context, cmd: SecretsCommand) -> anyhow::Result<Exit> {
    match cmd {
        SecretsCommand::Keygen => {
            let id = age::x25519::Identity::generate();
            let recipient = id.to_public().to_string();
            println!(
                "# public key: {recipient}\n{}",
                id.to_string().expose_secret()
            );
            eprintln!("recipient: {recipient}");
            Ok(Exit::Success)
        }
        SecretsCommand::Encrypt {
            file,
            recipients,
            passphrase,
        } => {
            let plaintext = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            } else {
                std::fs::read(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
            };
            let out = if passphrase {
                let Ok(p) = std::env::var("ETL_AGE_PASSPHRASE") else {
                    eprintln!("error: `--passphrase` reads the passphrase from ETL_AGE_PASSPHRASE, which is not set");
                    return Ok(Exit::Usage);
                };
                encrypt_with_passphrase(&plaintext, SecretString::from(p))
                    .map_err(anyhow::Error::msg)?
            } else {
                let mut parsed = Vec::new();
                for r in &recipients {
                    match r.parse::<age::x25519::Recipient>() {
                        Ok(x) => parsed.push(x),
                        Err(_) => {
                            eprintln!("error: invalid recipient `{r}`, expected an `age1…` X25519 public key\n\nhint: `etl secrets keygen` prints one");
                            return Ok(Exit::Usage);
                        }
                    }
                }
                encrypt_to(&plaintext, &parsed).map_err(anyhow::Error::msg)?
            };
            std::io::stdout().write_all(&out)?;
            Ok(Exit::Success)
        }
        SecretsCommand::List => {
            let Some(project) = project(ctx) else {
                return Ok(Exit::Usage);
            };
            if project.secrets.is_empty() {
                println!("no secrets are defined in the project file");
            }
            for (name, path) in &project.secrets {
                let how = match std::fs::read(path) {
                    Err(e) => format!("unreadable: {e}"),
                    Ok(bytes) => match age::Decryptor::new_buffered(&bytes[..]) {
                        Ok(d) if d.is_scrypt() => "age, passphrase (scrypt)".to_owned(),
                        Ok(_) => "age, X25519 recipients".to_owned(),
                        Err(e) => format!("not a valid age file: {e}"),
                    },
                };
                println!(
                    "{name:<16} {:<32} {how}",
                    path.strip_prefix(&project.root).unwrap_or(path).display()
                );
            }
            Ok(Exit::Success)
        }
        SecretsCommand::Show { name, reveal } => {
            let Some(project) = project(ctx) else {
                return Ok(Exit::Usage);
            };
            let key = match Key::from_env() {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(Exit::Usage);
                }
            };
            match SecretStore::new(project.secrets.clone(), key).decrypt(&name) {
                Ok(s) if reveal => {
                    println!("{}", s.expose());
                    Ok(Exit::Success)
                }
                Ok(s) => {
                    println!(
                        "{name}: {s} ({} characters; --reveal prints it)",
                        s.expose().chars().count()
                    );
                    Ok(Exit::Success)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(Exit::Usage)
                }
            }
        }
    }
}

fn project(ctx: &Context) -> Option<crate::plan::ProjectPlan> {
    let file = ctx.project_file_or_usage().ok()?;
    let loaded = load_project(&file, EnvMode::Lenient);
    if loaded.plan.is_none() {
        super::diagnostics::print_human(&loaded.diagnostics);
    }
    loaded.plan
}
