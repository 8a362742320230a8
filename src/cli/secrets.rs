//! `etl secrets`: make keys, encrypt files, and look at secrets without
//! printing them.

use std::io::{IsTerminal, Write};
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
        /// Encrypt with a passphrase instead: `ETL_AGE_PASSPHRASE`, else asked
        /// for at the terminal.
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
                let p = match read_passphrase() {
                    Ok(p) => p,
                    Err(m) => {
                        eprintln!("error: {m}");
                        return Ok(Exit::Usage);
                    }
                };
                encrypt_with_passphrase(&plaintext, p).map_err(anyhow::Error::msg)?
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
                    Ok(bytes) => match crate::secrets::inspect(&bytes) {
                        Ok(sealed) => sealed.to_string(),
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
                    eprintln!("error: {e}\n\nhint: {}", e.hint());
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
                    eprintln!("error: {e}\n\nhint: {}", e.hint());
                    Ok(Exit::Usage)
                }
            }
        }
    }
}

/// The passphrase for `encrypt --passphrase`: `ETL_AGE_PASSPHRASE`, else
/// typed twice at the terminal, never echoed.
fn read_passphrase() -> Result<SecretString, String> {
    if let Ok(p) = std::env::var("ETL_AGE_PASSPHRASE") {
        return Ok(SecretString::from(p));
    }
    if !std::io::stderr().is_terminal() {
        return Err(
            "`--passphrase` needs a terminal to ask for the passphrase, or ETL_AGE_PASSPHRASE"
                .into(),
        );
    }
    let tty = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map_err(|e| format!("cannot read the passphrase from the terminal: {e}"))
    };
    let first = tty("passphrase: ")?;
    if first.is_empty() {
        return Err("the passphrase is empty".into());
    }
    if tty("again: ")? != first {
        return Err("the two passphrases differ; nothing was encrypted".into());
    }
    Ok(SecretString::from(first))
}

/// Problems with the secrets profile `profile` uses, each placed where the
/// project file uses it: the file is missing or not an age file and, with
/// `decrypt`, it does not open with the configured key or a `credentials`
/// secret is not a service-account key. Decrypted values are dropped at once.
pub(crate) fn check_used(
    project: &super::LoadedProject,
    profile: &str,
    decrypt: bool,
) -> Vec<crate::spec::Diagnostic> {
    let Some(plan) = &project.plan else {
        return Vec::new();
    };
    let store = decrypt.then(|| Key::from_env().map(|k| SecretStore::new(plan.secrets.clone(), k)));
    let mut problems = Vec::new();
    for (name, (at, field)) in crate::plan::secrets_used(plan, profile) {
        // An unknown name is already reported by the project check.
        let Some(path) = plan.secrets.get(&name) else {
            continue;
        };
        let opened = crate::secrets::check_file(&name, path).and_then(|_| match &store {
            None => Ok(None),
            Some(Ok(store)) => store.decrypt(&name).map(Some),
            Some(Err(e)) => Err(e.clone()),
        });
        match opened {
            Err(e) => problems.push(crate::spec::Problem::new(at, e.to_string()).hint(e.hint())),
            Ok(Some(value)) if field == "credentials" => {
                if let Err(e) = crate::credentials::ServiceAccount::from_secret(&name, value) {
                    problems.push(
                        crate::spec::Problem::new(at, e.to_string())
                            .hint(crate::credentials::KeyError::HINT),
                    );
                }
            }
            Ok(_) => {}
        }
    }
    problems
        .into_iter()
        .map(|p| project.loaded.place(p))
        .collect()
}

fn project(ctx: &Context) -> Option<crate::plan::ProjectPlan> {
    let file = ctx.project_file_or_usage().ok()?;
    let loaded = load_project(&file, EnvMode::Lenient);
    if loaded.plan.is_none() {
        super::diagnostics::print_human(&loaded.diagnostics);
    }
    loaded.plan
}
