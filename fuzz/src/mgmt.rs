//! Input of the `mgmt_abi` target. The whole input goes through every
//! decoder of `keel_abi::mgmt` on its own; then it is read as a sequence
//! of management calls, each:
//!
//! ```text
//! Request::BYTES bytes   the request slot, as Dom0 wrote it
//! u16 input_len          (at most 4095) then that many bytes of input
//! u16 output_len         (at most 4095) size of the data area for the answer
//! ```

use keel_abi::mgmt::Request;

use crate::{Input, Output};

pub const MAX_DATA: usize = 0xFFF;

pub struct Call<'a> {
    pub slot: &'a [u8],
    pub input: &'a [u8],
    pub output_len: usize,
}

/// The calls in `data`; a trailing partial slot ends the sequence.
pub fn calls(data: &[u8]) -> Vec<Call<'_>> {
    let mut input = Input::new(data);
    let mut calls = Vec::new();
    while !input.is_empty() {
        let slot = input.take(Request::BYTES);
        if slot.len() < Request::BYTES {
            break;
        }
        let input_len = usize::from(input.u16()) & MAX_DATA;
        let bytes = input.take(input_len);
        let output_len = usize::from(input.u16()) & MAX_DATA;
        calls.push(Call {
            slot,
            input: bytes,
            output_len,
        });
    }
    calls
}

/// Seed encoder: one call.
pub fn encode_call(out: &mut Output, command: u32, args: [u64; 6], input: &[u8], output_len: u16) {
    let request = Request {
        command,
        data_len: input.len() as u32,
        args,
    };
    let mut slot = [0; Request::BYTES];
    request.encode(&mut slot).expect("the slot has room");
    out.bytes(&slot).u16(input.len() as u16).bytes(input).u16(output_len);
}
