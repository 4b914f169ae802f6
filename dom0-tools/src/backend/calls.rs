//! The calls a backend's devices make on Keel ([`VirtioCalls`]), bound to
//! one domain ([`DomainCalls`]), and the control path every device type
//! shares ([`on_control`]).

use anyhow::Result;
use keel_abi::mgmt::{DomainId, VirtioDeviceState};

use crate::client::Client;
use crate::transport::Transport;

/// The calls a device makes; [`DomainCalls`] makes them on Keel.
pub trait VirtioCalls {
    fn state(&mut self, device: usize) -> Result<VirtioDeviceState>;
    fn complete(&mut self, device: usize, queue_mask: u32, flags: u64, generation: u32) -> Result<()>;
}

/// A client bound to one domain.
pub struct DomainCalls<T> {
    pub client: Client<T>,
    pub id: DomainId,
}

impl<T: Transport> VirtioCalls for DomainCalls<T> {
    fn state(&mut self, device: usize) -> Result<VirtioDeviceState> {
        self.client.virtio_state(self.id, device)
    }

    fn complete(&mut self, device: usize, queue_mask: u32, flags: u64, generation: u32) -> Result<()> {
        self.client
            .virtio_complete(self.id, device, queue_mask, flags, generation)
    }
}

/// Whether a Keel refusal is [`keel_abi::mgmt::Status::BadState`]: the
/// generation moved on (the domain rebooted) under the backend.
fn stale(error: &anyhow::Error) -> bool {
    crate::client::is_status(error, keel_abi::mgmt::Status::BadState)
}

/// A transport change of device `device` (and once at start): fetches the
/// state and lets `apply` act on it. A completion refused as stale means
/// the domain rebooted meanwhile: the state is fetched again (a few times
/// at most).
pub fn on_control<C: VirtioCalls>(
    device: usize,
    keel: &mut C,
    mut apply: impl FnMut(&VirtioDeviceState, &mut C) -> Result<()>,
) -> Result<()> {
    let mut tries = 0;
    loop {
        let state = keel.state(device)?;
        match apply(&state, keel) {
            Err(error) if stale(&error) && tries < 3 => tries += 1,
            other => return other,
        }
    }
}
