#!/bin/busybox sh
# Dom0's PCI passthrough checks with VT-d: /usr/lib/keel/passthrough-kvm-test.sh
# in Dom0's initramfs (built by xtask/src/guest/dom0_initramfs.rs). Dom0's
# /init runs it when the kernel command line has `keel.test=passthrough-kvm`,
# then powers off.
#
# The boot test kvm-passthrough runs Keel in QEMU with KVM (nested VMX) as a
# q35 PC with an Intel IOMMU (`-device intel-iommu,intremap=on`) and an NVMe
# controller (QEMU's nvme, 1b36:0010, class 010802) in slot 3, its namespace
# a 2048-sector image whose sectors 0 and 1 hold known text
# (tests/src/emulator/qemu.rs). Keel enables the IOMMU at boot, so the
# controller's DMA can be confined, and must be: its DomU's config has no
# pci_unconfined_dma. In order:
#  list       `keel pci-assignable-list` shows the NVM Express function
#             (class 010802; the one domu-nvme.toml names), not assignable,
#             its DMA confined (an enabled VT-d unit covers it);
#  assignable `keel pci-assignable-add ADDRESS --intx-gsi GSI` with the host
#             GSI q35 routes the function's INTA to (q35_intx_gsi below:
#             the firmware's Interrupt Line holds the PIC's IRQ instead);
#  domu       `keel create` of domu-nvme works; the DomU (keel.domu=nvme)
#             finds the namespace behind the function with the host's ids
#             and its own nvme driver bound to it, reads sectors 0 and 1
#             (each its own known text: the controller writes them into the
#             DomU's RAM by DMA, through the IOMMU) and says how many
#             interrupts the controller had (MSI-X, which Keel forwards
#             through its trapped table; INTx is wired too), more than
#             before the reads;
#  dom0       Dom0 itself sees no 1b36:0010 function (it never sees host PCI
#             devices), and the list shows the function attached to
#             domu-nvme, still confined;
#  destroy    destroying domu-nvme gives all memory back and leaves the
#             function assignable again; `keel pci-assignable-remove`
#             returns it to the host.
#
# Every step says one `dom0: passthrough-kvm ...` line through the kernel
# log; the boot test (tests/src/cases.rs, PASSTHROUGH_KVM_STEPS and
# PASSTHROUGH_KVM_FAILURES) expects the success lines in order and fails on
# any failure line.

. /usr/lib/keel/domu-lib.sh

NVME_CONFIG=/etc/keel/domu-nvme.toml # domu-nvme: keel.domu=nvme, the NVMe function, no pci_unconfined_dma
NVME_DOMU=domu-nvme
# The host function the config names, and what it must be: QEMU's NVMe
# controller (Red Hat's vendor id), an NVM Express mass storage controller.
PCI_DEVICE=0000:00:03.0
PCI_IDS=1b36:0010
PCI_CLASS=010802
# What the DomU's /init (domu-init.sh) says when it has read the namespace,
# and when it could not.
NVME_DONE='domu: nvme done'
NVME_FAILED='domu: nvme FAILED'
# What the namespace's sectors 0 and 1 start with (tests/src/emulator/bochs.rs).
DISK_MARKER=KEEL-PASSTHROUGH-SECTOR-
# Dom0 seconds for the DomU to boot and read its namespace.
BOOT_TIMEOUT=600

# The host GSI at which INTA of the bus-0 function $1 (0000:00:SS.F)
# arrives on QEMU's q35 machine; fails for slots 25-31. The chipset's
# routing is fixed (QEMU 7.2, hw/isa/lpc_ich9.c): `ich9_cc_init` wires
# slots 0-24 to PIRQ E-H, irr[slot][intx] = (slot + intx) % 4 + 4 (INTA is
# intx 0), and in APIC mode `ich9_pirq_to_gsi` puts PIRQ A-H at I/O APIC
# inputs 16-23 (pirq + 16); slots 25-31 go through the D25IR-D31IR
# registers. QEMU's nvme has only INTA (hw/nvme/ctrl.c, `nvme_init_pci`).
# Slot 3: PIRQ H, GSI 23 (tests/src/emulator/qemu.rs, q35_intx_gsi).
q35_intx_gsi() {
    echo "$1" | grep -qE '^0000:00:[0-9a-f]{2}\.[0-7]$' || return 1
    slot=${1#0000:00:}
    slot=$((0x${slot%.*}))
    [ "$slot" -le 24 ] || return 1
    echo $((16 + slot % 4 + 4))
}

# Destroys domain $1 if it is listed and waits for it to go; says the
# failure line (with $2 for context) if that does not work.
destroy_domain() {
    destroy_and_wait "$1"
    case $? in
        0) return 0 ;;
        1) say "dom0: passthrough-kvm destroy failed: keel destroy $1 ($2)" ;;
        *) say "dom0: passthrough-kvm destroy failed: $1 still listed 10 s after destroy ($2)" ;;
    esac
    return 1
}

# Shows the list and checks the function's line: its state must match the
# extended regular expression $1 ("not assignable", "assignable", "attached
# to domu-nvme"); sets $line to the line. The line keeps its ids and class
# and says the DMA is confined (not "dma NOT confined").
listed_as() {
    run keel pci-assignable-list
    line=$(pci_list_line "$PCI_DEVICE")
    echo "$line" | grep -qE "^$PCI_DEVICE $PCI_IDS $PCI_CLASS $1 .*dma confined\$"
}

# --- free memory before any DomU ----------------------------------------------
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: passthrough-kvm free memory before: $before bytes"
else
    run keel info --json
    say "dom0: passthrough-kvm info failed: no free_memory in keel info --json"
fi

# --- the NVMe function: listed, not assignable yet, its DMA confined -------------
run keel pci-assignable-list
found=$(keel pci-assignable-list 2> /dev/null | awk -v class="$PCI_CLASS" '$3 == class { print $1; exit }')
gsi=
if [ -z "$found" ]; then
    say "dom0: passthrough-kvm list failed: no function of class $PCI_CLASS (NVM Express) listed"
elif [ "$found" != "$PCI_DEVICE" ]; then
    say "dom0: passthrough-kvm list failed: the NVM Express function is $found, but $NVME_CONFIG names $PCI_DEVICE"
elif ! gsi=$(q35_intx_gsi "$found"); then
    gsi=
    say "dom0: passthrough-kvm list failed: $found is not in a slot whose INTx q35 routes through PIRQ E-H"
elif listed_as "not assignable"; then
    say "dom0: passthrough-kvm nvme function listed, dma confined: $line (INTA at host GSI $gsi)"
else
    say "dom0: passthrough-kvm list failed: $PCI_DEVICE not listed as '$PCI_IDS $PCI_CLASS not assignable ... dma confined': '$line'"
fi

# --- assignable, with its INTx's host GSI ------------------------------------------------
if [ -n "$gsi" ] && run keel pci-assignable-add "$PCI_DEVICE" --intx-gsi "$gsi" && listed_as "assignable"; then
    say "dom0: passthrough-kvm made assignable with its INTx at host GSI $gsi: $line"
else
    say "dom0: passthrough-kvm assignable-add failed: $PCI_DEVICE --intx-gsi ${gsi:-(none)}: '$line'"
fi

# --- the DomU and its namespace ---------------------------------------------------------
if run keel create "$NVME_CONFIG"; then
    nvme_id=$(domain_field "$NVME_DOMU" id)
    say "dom0: passthrough-kvm created domu-nvme (id $nvme_id)"

    # The DomU says NVME_DONE, or NVME_FAILED with the reason.
    wait_start=$(now)
    outcome=
    while :; do
        if console_has "$NVME_DOMU" "$NVME_DONE"; then
            outcome=done
            break
        fi
        if console_has "$NVME_DOMU" "$NVME_FAILED"; then
            outcome=failed
            break
        fi
        state=$(domain_state "$NVME_DOMU")
        case "$state" in
            running | blocked) ;;
            *)
                outcome="stopped ($state)"
                break
                ;;
        esac
        if holds "waited >= limit" -v waited="$(since "$wait_start")" -v limit="$BOOT_TIMEOUT"; then
            outcome="still waiting after $BOOT_TIMEOUT s ($state)"
            break
        fi
        # Under KVM the DomU boots in seconds: look often.
        sleep 2
    done
    echo "[$(now)] $NVME_DOMU: $outcome after $(since "$wait_start") s"
    # What its kernel said about the controller, then its own lines.
    echo "--- $NVME_DOMU's console: the controller and its namespace ---"
    console_now "$NVME_DOMU" | grep -E 'nvme|00:04\.0|DMAR|IOMMU' | grep -v 'domu: '
    show_domu_lines "$NVME_DOMU"

    console=$(console_now "$NVME_DOMU")
    sector0=$(echo "$console" | grep -oE "domu: nvme sector 0: ${DISK_MARKER}0 [0-9A-Za-z]+" | tail -n 1)
    sector1=$(echo "$console" | grep -oE "domu: nvme sector 1: ${DISK_MARKER}1 [0-9A-Za-z]+" | tail -n 1)
    irqs=$(echo "$console" | grep -oE 'domu: nvme irqs [0-9]+' | tail -n 1 | sed 's/.* //')
    irq_line=$(echo "$console" | grep -oE 'domu: nvme irqs .*' | tail -n 1)
    pci=$(echo "$console" | grep -oE 'domu: nvme pci .*' | tail -n 1)
    failure=$(echo "$console" | grep -oE "$NVME_FAILED.*" | head -n 1)
    if [ "$outcome" != done ]; then
        # All it said, for the reader.
        echo "--- $NVME_DOMU's whole console ---"
        echo "$console"
        echo "---"
        say "dom0: passthrough-kvm domu nvme failed: $NVME_DOMU ${failure:-$outcome}"
    elif ! echo "$pci" | grep -qE " $PCI_IDS class $PCI_CLASS driver nvme\$"; then
        say "dom0: passthrough-kvm domu nvme failed: $NVME_DOMU's function is not the host's, driven by nvme: '$pci'"
    elif [ -z "$sector0" ] || [ -z "$sector1" ]; then
        say "dom0: passthrough-kvm domu nvme failed: $NVME_DOMU did not say both sectors' text"
    elif [ "${irqs:-0}" -le 0 ]; then
        say "dom0: passthrough-kvm domu nvme failed: no interrupts: '$irq_line'"
    else
        say "dom0: passthrough-kvm domu read the namespace through the host's function: ${pci#domu: nvme }; sectors 0 and 1 hold their text; ${irq_line#domu: nvme }"
    fi

    # --- Dom0 has no such function; the list shows who has it -------------------
    seen=
    functions=0
    for device in /sys/bus/pci/devices/*; do
        [ -e "$device/vendor" ] || continue
        functions=$((functions + 1))
        ids="$(sed 's/^0x//' "$device/vendor"):$(sed 's/^0x//' "$device/device")"
        echo "Dom0: ${device##*/} $ids"
        [ "$ids" = "$PCI_IDS" ] && seen="$seen ${device##*/}"
    done
    if [ -z "$seen" ]; then
        say "dom0: passthrough-kvm dom0 does not see the function: $functions PCI functions, none $PCI_IDS"
    else
        say "dom0: passthrough-kvm dom0 isolation failed: Dom0 sees $PCI_IDS at$seen"
    fi

    if listed_as "attached to $NVME_DOMU"; then
        say "dom0: passthrough-kvm list shows it attached: $line"
    else
        say "dom0: passthrough-kvm list failed: $PCI_DEVICE not listed as attached to $NVME_DOMU, dma confined: '$line'"
    fi

    # --- destroy: memory back, the function assignable again ----------------------
    if destroy_domain "$NVME_DOMU" "after its namespace checks"; then
        after=$(memory_back_to "$before")
        if [ -n "$before" ] && [ "$after" = "$before" ]; then
            say "dom0: passthrough-kvm destroyed domu-nvme, memory restored"
        else
            say "dom0: passthrough-kvm memory check failed: before=$before after=$after"
        fi
    fi
else
    say "dom0: passthrough-kvm create failed: keel create $NVME_CONFIG"
fi

if listed_as "assignable"; then
    say "dom0: passthrough-kvm assignable again after destroy: $line"
else
    say "dom0: passthrough-kvm list failed: $PCI_DEVICE not assignable after $NVME_DOMU went: '$line'"
fi

if run keel pci-assignable-remove "$PCI_DEVICE" && listed_as "not assignable"; then
    say "dom0: passthrough-kvm returned to the host: $line"
else
    say "dom0: passthrough-kvm assignable-remove failed: $PCI_DEVICE: '$line'"
fi

run keel list
say "dom0: passthrough-kvm checks done"
