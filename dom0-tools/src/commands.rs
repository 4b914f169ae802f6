//! What each subcommand does, over any [`Transport`] so tests can run them
//! against a fake Keel.

use std::io::{IsTerminal, Read, Write};
use std::sync::mpsc::{self, Receiver};

use anyhow::{anyhow, bail, Context, Result};
use keel_abi::mgmt::DomainId;

use crate::backend::supervisor::Backends;
use crate::block;
use crate::cli::{disks_at_create_only, nics_at_create_only, Command};
use crate::client::Client;
use crate::config::Config;
use crate::console::{self, ConsoleEnd, ConsoleOptions};
use crate::create;
use crate::hvc::HvcConsole;
use crate::network;
use crate::output;
use crate::sys::RawTerminal;
use crate::top;
use crate::transport::Transport;

/// A resolved domain argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: DomainId,
    /// How messages name it: "web (id 3)", or the id as typed.
    pub label: String,
}

/// A domain argument: all digits is an id (names never are), anything else
/// a name looked up in List.
pub fn resolve<T: Transport>(client: &mut Client<T>, spec: &str) -> Result<Target> {
    if !spec.is_empty() && spec.bytes().all(|byte| byte.is_ascii_digit()) {
        let id = spec.parse().map_err(|_| anyhow!("domain id {spec} is out of range"))?;
        return Ok(Target {
            id,
            label: spec.to_string(),
        });
    }
    let domains = client.list()?;
    let domain = domains
        .iter()
        .find(|domain| domain.name.as_str() == spec)
        .ok_or_else(|| anyhow!("no domain named `{spec}`"))?;
    Ok(Target {
        id: domain.id,
        label: format!("{spec} (id {})", domain.id),
    })
}

/// Where output goes; tests capture it.
pub struct Streams<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Runs `command`. `connect` opens the device and says Hello; it is called
/// only after the arguments were checked, so a bad config file is reported
/// the same on any machine. `backends` starts and stops the domains' disk
/// backends.
pub fn execute<T: Transport>(
    command: Command,
    connect: impl FnOnce() -> Result<Client<T>>,
    streams: Streams,
    backends: &mut dyn Backends,
) -> Result<()> {
    let Streams { out, err } = streams;
    match command {
        Command::Create {
            config: path,
            paused,
            console,
        } => {
            let config = Config::load(&path)?;
            let file = path.display().to_string();
            let images = create::open_images(&config, &file)?;
            let disks = create::open_disks(&config, &file)?;
            let mut client = connect()?;
            let nics = create::resolve_nics(&config);
            let staging = create::Staging {
                images,
                disks,
                nics,
                paused,
            };
            let id = create::create_domain(&mut client, &config, staging, backends, err)?;
            writeln!(out, "Created domain {} (id {id})", config.name)?;
            out.flush()?;
            if console {
                let target = Target {
                    id,
                    label: format!("{} (id {id})", config.name),
                };
                let mut console = console::KeelConsole::new(&mut client, target.id);
                attach_terminal(&mut console, &target, None, None, out, err)?;
            }
        }
        Command::List { json } => {
            let domains = connect()?.list()?;
            let text = if json {
                output::list_json(&domains)
            } else {
                output::list_table(&domains)
            };
            out.write_all(text.as_bytes())?;
        }
        Command::Destroy { domain } => {
            let mut client = connect()?;
            let target = resolve(&mut client, &domain)?;
            // The backend first: it must stop touching the domain's memory
            // and disks before they go. A missing one is fine.
            if let Err(error) = backends.stop(target.id) {
                writeln!(
                    err,
                    "keel: warning: cannot stop the backend of {}: {error:#}",
                    target.label
                )?;
            }
            client
                .destroy(target.id)
                .with_context(|| format!("cannot destroy domain {}", target.label))?;
        }
        Command::Shutdown { domain } => lifecycle(connect()?, &domain, "shut down", Client::shutdown)?,
        Command::Reboot { domain } => lifecycle(connect()?, &domain, "reboot", Client::reboot)?,
        Command::Pause { domain } => lifecycle(connect()?, &domain, "pause", Client::pause)?,
        Command::Unpause { domain } => lifecycle(connect()?, &domain, "unpause", Client::unpause)?,
        Command::Console {
            domain,
            until,
            timeout,
            hvc,
        } => {
            let mut client = connect()?;
            let target = resolve(&mut client, &domain)?;
            if hvc {
                let socket = hvc_socket(backends, &target)?;
                let mut console = HvcConsole::connect(&socket)?;
                attach_terminal(&mut console, &target, until, timeout, out, err)?;
            } else {
                let mut console = console::KeelConsole::new(&mut client, target.id);
                attach_terminal(&mut console, &target, until, timeout, out, err)?;
            }
        }
        Command::Info { json } => {
            let mut client = connect()?;
            let host = client.info()?;
            let text = if json {
                output::info_json(&host, &client.list()?)
            } else {
                output::info_text(&host)
            };
            out.write_all(text.as_bytes())?;
        }
        Command::Dmesg => console::dmesg(&mut connect()?, out, err)?,
        Command::PciAssignableList { json } => {
            let mut client = connect()?;
            let functions = client.pci_list()?;
            // Owners' names; attached devices name their domain.
            let domains = client.list()?;
            let text = if json {
                output::pci_json(&functions, &domains)
            } else {
                output::pci_table(&functions, &domains)
            };
            out.write_all(text.as_bytes())?;
        }
        Command::PciAssignableAdd { address, intx_gsi } => connect()?
            .pci_assignable(address, true, intx_gsi)
            .with_context(|| format!("cannot make {address} assignable"))?,
        Command::PciAssignableRemove { address } => connect()?
            .pci_assignable(address, false, None)
            .with_context(|| format!("cannot give {address} back to the host"))?,
        Command::BlockList { domain, json } => {
            let mut client = connect()?;
            let target = resolve(&mut client, &domain)?;
            let disks = block::list(&mut client, target.id, backends, err, &target.label)?;
            let text = if json {
                block::json(&disks)
            } else {
                block::table(&disks)
            };
            out.write_all(text.as_bytes())?;
        }
        Command::BlockAttach { .. } | Command::BlockDetach { .. } => bail!(disks_at_create_only()),
        Command::NetworkList { domain, json } => {
            let mut client = connect()?;
            let target = resolve(&mut client, &domain)?;
            let nics = network::list(&mut client, target.id, backends, err, &target.label)?;
            let text = if json {
                network::json(&nics)
            } else {
                network::table(&nics)
            };
            out.write_all(text.as_bytes())?;
        }
        Command::NetworkAttach { .. } | Command::NetworkDetach { .. } => bail!(nics_at_create_only()),
        Command::BackendRestart { domain } => {
            let mut client = connect()?;
            let target = resolve(&mut client, &domain)?;
            backends
                .restart(target.id)
                .with_context(|| format!("cannot restart the backend of {}", target.label))?;
            writeln!(out, "Restarted the backend of {}", target.label)?;
        }
        Command::Backend(args) => crate::backend::run(&args, err)?,
        Command::Switch(args) => crate::switch_daemon::run(&args, err)?,
        Command::Top { delay, iterations } => {
            let batch = iterations.is_some() || !std::io::stdout().is_terminal();
            top::run(&mut connect()?, delay, iterations, batch, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The socket of `target`'s virtio console, from its backend's ready file.
fn hvc_socket(backends: &mut dyn Backends, target: &Target) -> Result<std::path::PathBuf> {
    let status = backends.status(target.id)?;
    let ready = status.ready.filter(|ready| ready.domain == target.id);
    let Some(console) = ready.and_then(|ready| ready.console) else {
        bail!(
            "{} has no virtio console (it needs virtio_console = true in its config)",
            target.label
        );
    };
    if status.running.is_none() {
        bail!("no backend runs for {}: its virtio console is not served", target.label);
    }
    Ok(console.socket.into())
}

fn lifecycle<T: Transport>(
    mut client: Client<T>,
    spec: &str,
    verb: &str,
    call: fn(&mut Client<T>, DomainId) -> Result<()>,
) -> Result<()> {
    let target = resolve(&mut client, spec)?;
    call(&mut client, target.id).with_context(|| format!("cannot {verb} domain {}", target.label))
}

/// Reads stdin on a thread (std has no non-blocking read); the channel is
/// bounded so piped input is read only as fast as the guest takes it.
fn stdin_channel() -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0; 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if sender.send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    receiver
}

/// The console on this process's terminal: raw mode while attached when
/// stdin is a terminal (restored on every way out, errors included, by
/// the guard's drop).
fn attach_terminal(
    console: &mut dyn console::Endpoint,
    target: &Target,
    until: Option<String>,
    timeout: Option<std::time::Duration>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let raw = if interactive {
        writeln!(err, "keel: connected to {}'s console (Ctrl-] to detach)", target.label)?;
        Some(RawTerminal::enter(&stdin).context("cannot put the terminal in raw mode")?)
    } else {
        None
    };
    let options = ConsoleOptions {
        until,
        timeout,
        interactive,
        poll: console::POLL,
    };
    let ended = console::attach(console, &target.label, &options, Some(stdin_channel()), out, err);
    drop(raw);
    match ended? {
        ConsoleEnd::Detached => writeln!(err, "\nkeel: detached from {}", target.label)?,
        ConsoleEnd::Matched | ConsoleEnd::DomainGone => {}
    }
    Ok(())
}
