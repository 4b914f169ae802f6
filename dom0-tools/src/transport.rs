//! How a call reaches Keel: the [`Transport`] trait, and [`MmioTransport`],
//! which runs the shared-memory protocol of `keel_abi::mgmt` over any pair
//! of BARs ([`Bars`]: the real mapped device, or a fake in tests).

use anyhow::{anyhow, bail, ensure, Result};
use keel_abi::mgmt::{layout, regs, Request, Response, SHARED_BYTES};

/// One synchronous management call: the request, its input bytes, and the
/// response with the bytes of the data area it covers (output or error
/// message). Statuses are the client's business, not the transport's.
pub trait Transport {
    fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)>;

    /// The ABI version the device advertises outside the protocol (BAR 0's
    /// VERSION register), for error messages when Hello fails.
    fn advertised_version(&self) -> Option<u32> {
        None
    }
}

/// BAR 0 (registers) and BAR 2 (shared memory) of the management function.
pub trait Bars {
    fn read_reg(&self, offset: u64) -> u32;
    /// Must be ordered after every earlier `write_shared` and before every
    /// later `read_shared`.
    fn write_reg(&mut self, offset: u64, value: u32);
    fn write_shared(&mut self, offset: usize, bytes: &[u8]);
    fn read_shared(&self, offset: usize, out: &mut [u8]);
}

/// A status no Keel writes: the response slot is primed with it so that a
/// doorbell nobody answered is noticed instead of re-reading a stale reply.
const UNANSWERED: u32 = u32::MAX;

pub struct MmioTransport<B> {
    bars: B,
}

impl<B: Bars> MmioTransport<B> {
    /// Checks that the BARs are a Keel management function this tool can
    /// drive. `what` names the device in errors (its sysfs path).
    pub fn new(bars: B, what: &str) -> Result<Self> {
        let magic = bars.read_reg(regs::MAGIC);
        if magic != regs::MAGIC_VALUE {
            bail!(
                "{what} is not a Keel management interface: MAGIC reads {magic:#010x}, expected {:#010x} (\"KEEL\")",
                regs::MAGIC_VALUE
            );
        }
        let shared = u64::from(bars.read_reg(regs::SHARED_SIZE));
        if shared < SHARED_BYTES {
            bail!("{what}: SHARED_SIZE reads {shared:#x} bytes, the management ABI needs {SHARED_BYTES:#x}");
        }
        Ok(Self { bars })
    }

    pub fn bars(&self) -> &B {
        &self.bars
    }
}

impl<B: Bars> Transport for MmioTransport<B> {
    fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)> {
        ensure!(
            input.len() <= layout::DATA_BYTES,
            "request input of {} bytes does not fit the {}-byte data area",
            input.len(),
            layout::DATA_BYTES
        );
        ensure!(
            request.data_len as usize == input.len(),
            "request data_len disagrees with its input"
        );
        let mut slot = [0; Request::BYTES];
        request
            .encode(&mut slot)
            .map_err(|error| anyhow!("encoding the request: {error}"))?;
        let mut primed = [0; Response::BYTES];
        let unanswered = Response {
            status: UNANSWERED,
            ..Response::default()
        };
        unanswered
            .encode(&mut primed)
            .map_err(|error| anyhow!("priming the response slot: {error}"))?;

        self.bars.write_shared(layout::DATA, input);
        self.bars.write_shared(layout::REQUEST, &slot);
        self.bars.write_shared(layout::RESPONSE, &primed);
        self.bars.write_reg(regs::DOORBELL, regs::DOORBELL_RING);

        let mut slot = [0; Response::BYTES];
        self.bars.read_shared(layout::RESPONSE, &mut slot);
        let response = Response::decode(&slot).map_err(|error| anyhow!("Keel's response is malformed: {error}"))?;
        if response.status == UNANSWERED {
            bail!("Keel did not answer the doorbell (the response slot is unchanged)");
        }
        let mut data = vec![0; response.data_len as usize];
        self.bars.read_shared(layout::DATA, &mut data);
        Ok((response, data))
    }

    fn advertised_version(&self) -> Option<u32> {
        Some(self.bars.read_reg(regs::VERSION))
    }
}

/// Lets a caller keep its transport (a test its fake) while a client uses it.
impl<T: Transport + ?Sized> Transport for &mut T {
    fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)> {
        (**self).call(request, input)
    }

    fn advertised_version(&self) -> Option<u32> {
        (**self).advertised_version()
    }
}
