//! The shared-memory protocol, run against fake BARs that answer the
//! doorbell by reading the request out of "shared memory".

use keel_abi::mgmt::{layout, regs, Command, DomainState, ImageKind, Request, Response, VERSION};

use super::fake::{FakeBars, FakeKeel};
use crate::client::Client;
use crate::transport::{Bars, MmioTransport, Transport};

fn transport() -> MmioTransport<FakeBars> {
    MmioTransport::new(FakeBars::new(FakeKeel::new()), "/sys/bus/pci/devices/0000:00:03.0").unwrap()
}

#[test]
fn a_wrong_magic_is_refused() {
    let mut bars = FakeBars::new(FakeKeel::new());
    bars.magic = 0x1234_5678;
    let error = MmioTransport::new(bars, "/sys/bus/pci/devices/0000:00:03.0")
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "/sys/bus/pci/devices/0000:00:03.0 is not a Keel management interface: MAGIC reads 0x12345678, \
         expected 0x4c45454b (\"KEEL\")"
    );
}

#[test]
fn too_little_shared_memory_is_refused() {
    let mut bars = FakeBars::new(FakeKeel::new());
    bars.shared_size = 0x1000;
    let error = MmioTransport::new(bars, "dev").err().unwrap();
    assert_eq!(
        error.to_string(),
        "dev: SHARED_SIZE reads 0x1000 bytes, the management ABI needs 0x200000"
    );
}

#[test]
fn calls_go_through_the_slots_and_the_data_area() {
    let mut transport = transport();
    let mut client = Client::connect(&mut transport).unwrap();
    let id = client
        .create(
            &crate::config::Config::parse(
                "name = \"web\"\nmemory = 64\nkernel = \"k\"\n",
                "web.toml",
                std::path::Path::new(""),
            )
            .unwrap()
            .create_request(),
        )
        .unwrap();
    client.load_image(id, ImageKind::Cmdline, 0, 5, b"quiet").unwrap();
    let domains = client.list().unwrap();
    assert_eq!(domains[1].name.as_str(), "web");
    assert_eq!(domains[1].state, DomainState::Building);

    let bars = transport.bars();
    assert_eq!(bars.doorbells, 4);
    assert_eq!(bars.keel.domains[&id].image(ImageKind::Cmdline), Some(&b"quiet"[..]));
    // The last request (List) sits in the request slot, its output in the
    // data area after the response.
    let request = Request::decode(&bars.shared[layout::REQUEST..]).unwrap();
    assert_eq!(request.command, Command::List as u32);
    let response = Response::decode(&bars.shared[layout::RESPONSE..]).unwrap();
    assert_eq!((response.status, response.values[0]), (0, 2));
}

#[test]
fn errors_carry_the_message_from_the_data_area() {
    let mut transport = transport();
    let mut client = Client::connect(&mut transport).unwrap();
    let error = client.destroy(0).unwrap_err();
    assert_eq!(error.to_string(), "not permitted: Dom0");
}

#[test]
fn an_unanswered_doorbell_is_noticed() {
    let mut bars = FakeBars::new(FakeKeel::new());
    bars.answers = false;
    // A plausible old answer (status Ok) sits in the slot: it must not be believed.
    Response::default()
        .encode(&mut bars.shared[layout::RESPONSE..])
        .unwrap();
    let mut silent = MmioTransport::new(bars, "dev").unwrap();
    let error = silent.call(&Request::default(), &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Keel did not answer the doorbell (the response slot is unchanged)"
    );
}

#[test]
fn input_past_the_data_area_or_disagreeing_with_data_len_is_refused() {
    let mut transport = transport();
    let big = vec![0; layout::DATA_BYTES + 1];
    let request = Request {
        command: Command::ConsoleWrite as u32,
        data_len: big.len() as u32,
        args: [0; 6],
    };
    assert!(transport.call(&request, &big).is_err());
    let request = Request { data_len: 3, ..request };
    let error = transport.call(&request, b"ab").unwrap_err();
    assert_eq!(error.to_string(), "request data_len disagrees with its input");
    assert_eq!(transport.bars().doorbells, 0);
}

#[test]
fn the_device_advertises_its_version_register() {
    let transport = transport();
    assert_eq!(transport.advertised_version(), Some(VERSION));
    assert_eq!(transport.bars().read_reg(regs::MAGIC), regs::MAGIC_VALUE);
}
