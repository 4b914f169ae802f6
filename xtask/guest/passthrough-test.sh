#!/bin/busybox sh
# Dom0's PCI passthrough checks: /usr/lib/keel/passthrough-test.sh in Dom0's
# initramfs (built by xtask/src/guest/dom0_initramfs.rs). Dom0's /init runs
# it when the kernel command line has `keel.test=passthrough`, then powers
# off.
#
# The host's PIIX3 IDE function (Bochs' 0000:00:01.1, 8086:7010, both
# channels in compatibility mode: legacy ports and IRQs 14 and 15) goes to
# a DomU, whose own ata_piix driver reads the disk the boot test
# bochs-passthrough puts on the secondary channel. Bochs has no IOMMU, so
# the device's DMA is confined by nothing: Keel must refuse it unless the
# config says pci_unconfined_dma = true (the DomU reads in PIO,
# libata.dma=0). In order:
#  list       `keel pci-assignable-list` shows the function, not assignable
#             and its DMA not confined;
#  refusals   `keel create` of domu-disk fails while the function is not
#             assignable; `keel pci-assignable-add --intx-gsi 200` (a GSI no
#             I/O APIC has) fails; after `keel pci-assignable-add`, a config without
#             pci_unconfined_dma (domu-disk-confined) fails saying the DMA is
#             not confined; either leaves no domain and no memory taken;
#  domu       `keel create` of domu-disk works; the DomU (keel.domu=disk)
#             finds the function with the host's ids and ata_piix bound to
#             it, reads sectors 0 and 1 (each its own known text) and says
#             how many interrupts ata_piix had, more than before the reads;
#  intx       the same DomU also has the machine's e1000 (made assignable
#             with the IDE function): bound to uio_pci_generic, its
#             level-triggered INTx fires once per cause, again while a
#             cause stays set, and not once the cause is cleared
#             (`keel-stress intx`);
#  dom0       Dom0 itself sees no 8086:7010 function (it never sees host PCI
#             devices), and the list shows the function attached to domu-disk;
#  destroy    destroying domu-disk gives all memory back and leaves the
#             function assignable again; `keel pci-assignable-remove`
#             returns it to the host.
#
# Every step says one `dom0: passthrough ...` line through the kernel log;
# the boot test bochs-passthrough (tests/src/cases.rs, PASSTHROUGH_STEPS and
# PASSTHROUGH_FAILURES) expects the success lines in order and fails on any
# failure line.

. /usr/lib/keel/domu-lib.sh

DISK_CONFIG=/etc/keel/domu-disk.toml              # domu-disk: keel.domu=disk, the IDE function, pci_unconfined_dma
CONFINED_CONFIG=/etc/keel/domu-disk-confined.toml # domu-disk-confined: the same without pci_unconfined_dma
DISK_DOMU=domu-disk
CONFINED_DOMU=domu-disk-confined
# The host function both configs name, and what it is: an IDE controller
# with both channels in compatibility mode. Keel shows it to the DomU with
# the same ids and class, but may change the programming interface (the
# last two digits): the DomU's firmware has no ISA IRQs, so it sees native
# mode.
PCI_DEVICE=0000:00:01.1
# The e1000 the DomU gets as well (for its INTx).
NIC_DEVICE=0000:00:02.0
PCI_IDS=8086:7010
PCI_CLASS=010180
# What the DomU's /init (domu-init.sh) says when it has read the disk, and
# when it could not.
DISK_DONE='domu: disk done'
DISK_FAILED='domu: disk FAILED'
# What the disk's sectors 0 and 1 start with (tests/src/emulator/bochs.rs).
DISK_MARKER=KEEL-PASSTHROUGH-SECTOR-
# Dom0 seconds for the DomU to boot and read its disk.
BOOT_TIMEOUT=600

# Destroys domain $1 if it is listed and waits for it to go; says the
# failure line (with $2 for context) if that does not work.
destroy_domain() {
    destroy_and_wait "$1"
    case $? in
        0) return 0 ;;
        1) say "dom0: passthrough destroy failed: keel destroy $1 ($2)" ;;
        *) say "dom0: passthrough destroy failed: $1 still listed 10 s after destroy ($2)" ;;
    esac
    return 1
}

# Shows the list and checks the function's line: its state must match the
# extended regular expression $1 ("not assignable", "assignable", "attached
# to domu-disk"); sets $line to the line. The line keeps its ids and class
# and says the DMA is not confined (no IOMMU in Bochs).
listed_as() {
    run keel pci-assignable-list
    line=$(pci_list_line "$PCI_DEVICE")
    echo "$line" | grep -qE "^$PCI_DEVICE $PCI_IDS $PCI_CLASS $1 .*dma NOT confined"
}

# A refused `keel create` ($1: the config, $2: the domain's name, $3: what
# its refusal must say) leaves no domain and takes no memory. Sets $refusal
# to the first line it said; returns 1 (and says the failure line, with $4
# saying what was tried) otherwise.
create_refused() {
    keel_refuses "$3" create "$1"
    status=$?
    refusal=$(grep -iE "$3" /tmp/keel-output.txt | head -n 1)
    [ -n "$refusal" ] || refusal=$(head -n 1 /tmp/keel-output.txt)
    if [ "$status" -eq 1 ]; then
        say "dom0: passthrough refusal failed: keel create $1 worked $4"
        destroy_domain "$2" "created by mistake"
        return 1
    fi
    if [ "$status" -eq 2 ]; then
        say "dom0: passthrough refusal failed: keel create $1 $4 said '$refusal', not /$3/"
        destroy_domain "$2" "refused unclearly"
        return 1
    fi
    if ! wait_gone "$2"; then
        run keel list
        say "dom0: passthrough refusal failed: $2 still listed after its refused create $4"
        destroy_domain "$2" "refused but listed"
        return 1
    fi
    now_free=$(memory_back_to "$before")
    if [ "$now_free" != "$before" ]; then
        say "dom0: passthrough refusal failed: free memory $before before, $now_free after the refused create $4"
        return 1
    fi
    return 0
}

# --- free memory before any DomU ----------------------------------------------
before=$(free_memory)
if [ -n "$before" ]; then
    say "dom0: passthrough free memory before: $before bytes"
else
    run keel info --json
    say "dom0: passthrough info failed: no free_memory in keel info --json"
fi

# --- the host's function, not assignable yet --------------------------------------
if listed_as "not assignable"; then
    say "dom0: passthrough host function listed: $line"
else
    say "dom0: passthrough list failed: $PCI_DEVICE not listed as '$PCI_IDS $PCI_CLASS not assignable ... dma NOT confined': '$line'"
fi

# --- refusals -------------------------------------------------------------------------
if create_refused "$DISK_CONFIG" "$DISK_DOMU" "$PCI_DEVICE|assignable|not permitted" \
    "before keel pci-assignable-add"; then
    say "dom0: passthrough create refused while not assignable: $refusal"
fi

# An INTx GSI no I/O APIC has is refused (Bochs' one I/O APIC has 24).
if ! keel_refuses "GSI 200" pci-assignable-add "$NIC_DEVICE" --intx-gsi 200; then
    say "dom0: passthrough assignable-add failed: --intx-gsi 200 was not refused for GSI 200"
elif run keel pci-assignable-add "$PCI_DEVICE" && run keel pci-assignable-add "$NIC_DEVICE" \
    && listed_as "assignable"; then
    say "dom0: passthrough made assignable: $line"
else
    say "dom0: passthrough assignable-add failed: $PCI_DEVICE: '$line'"
fi

if create_refused "$CONFINED_CONFIG" "$CONFINED_DOMU" "not (be )?confined|no IOMMU confines" \
    "without pci_unconfined_dma"; then
    say "dom0: passthrough unconfined dma refused without pci_unconfined_dma: $refusal"
fi

# --- the DomU and its disk -------------------------------------------------------------
if run keel create "$DISK_CONFIG"; then
    disk_id=$(domain_field "$DISK_DOMU" id)
    say "dom0: passthrough created domu-disk (id $disk_id)"

    # The DomU says DISK_DONE, or DISK_FAILED with the reason.
    wait_start=$(now)
    outcome=
    while :; do
        if console_has "$DISK_DOMU" "$DISK_DONE"; then
            outcome=done
            break
        fi
        if console_has "$DISK_DOMU" "$DISK_FAILED"; then
            outcome=failed
            break
        fi
        state=$(domain_state "$DISK_DOMU")
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
        sleep "$LOOK_INTERVAL"
    done
    echo "[$(now)] $DISK_DOMU: $outcome after $(since "$wait_start") s"
    # What its kernel said about the controller and the disk, then its own lines.
    echo "--- $DISK_DOMU's console: the controller and its disk ---"
    console_now "$DISK_DOMU" | grep -E 'ata_piix|ata[0-9]|scsi|sd[a-z]* |\[sd[a-z]+\]|00:04\.0|pci 0000' | grep -v 'domu: '
    show_domu_lines "$DISK_DOMU"

    console=$(console_now "$DISK_DOMU")
    sector0=$(echo "$console" | grep -oE "domu: disk sector 0: ${DISK_MARKER}0 [0-9A-Za-z]+" | tail -n 1)
    sector1=$(echo "$console" | grep -oE "domu: disk sector 1: ${DISK_MARKER}1 [0-9A-Za-z]+" | tail -n 1)
    irqs=$(echo "$console" | grep -oE 'domu: disk irqs [0-9]+' | tail -n 1 | sed 's/.* //')
    irq_line=$(echo "$console" | grep -oE 'domu: disk irqs .*' | tail -n 1)
    pci=$(echo "$console" | grep -oE 'domu: disk pci .*' | tail -n 1)
    failure=$(echo "$console" | grep -oE "$DISK_FAILED.*" | head -n 1)
    if [ "$outcome" != done ]; then
        # All it said, for the reader.
        echo "--- $DISK_DOMU's whole console ---"
        echo "$console"
        echo "---"
        say "dom0: passthrough domu disk failed: $DISK_DOMU ${failure:-$outcome}"
    elif ! echo "$pci" | grep -qE " $PCI_IDS class ${PCI_CLASS%??}[0-9a-f]{2} driver ata_piix\$"; then
        say "dom0: passthrough domu disk failed: $DISK_DOMU's function is not the host's, driven by ata_piix: '$pci'"
    elif [ -z "$sector0" ] || [ -z "$sector1" ]; then
        say "dom0: passthrough domu disk failed: $DISK_DOMU did not say both sectors' text"
    elif [ "${irqs:-0}" -le 0 ]; then
        say "dom0: passthrough domu disk failed: no interrupts: '$irq_line'"
    else
        say "dom0: passthrough domu read the disk through the host's function: ${pci#domu: disk }; sectors 0 and 1 hold their text; ${irq_line#domu: disk }"
    fi
    intx=$(echo "$console" | grep -oE 'domu: intx (ok|FAILED): .*' | tail -n 1)
    case "$intx" in
        "domu: intx ok: "*) say "dom0: passthrough domu's e1000 interrupts arrive level-triggered: ${intx#domu: intx ok: }" ;;
        *) say "dom0: passthrough domu intx failed: ${intx:-the DomU said nothing about its e1000}" ;;
    esac

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
        say "dom0: passthrough dom0 does not see the function: $functions PCI functions, none $PCI_IDS"
    else
        say "dom0: passthrough dom0 isolation failed: Dom0 sees $PCI_IDS at$seen"
    fi

    if listed_as "attached to $DISK_DOMU"; then
        say "dom0: passthrough list shows it attached: $line"
    else
        say "dom0: passthrough list failed: $PCI_DEVICE not listed as attached to $DISK_DOMU: '$line'"
    fi

    # --- destroy: memory back, the function assignable again ----------------------
    if destroy_domain "$DISK_DOMU" "after its disk checks"; then
        after=$(memory_back_to "$before")
        if [ -n "$before" ] && [ "$after" = "$before" ]; then
            say "dom0: passthrough destroyed domu-disk, memory restored"
        else
            say "dom0: passthrough memory check failed: before=$before after=$after"
        fi
    fi
else
    say "dom0: passthrough create failed: keel create $DISK_CONFIG"
fi

if listed_as "assignable"; then
    say "dom0: passthrough assignable again after destroy: $line"
else
    say "dom0: passthrough list failed: $PCI_DEVICE not assignable after $DISK_DOMU went: '$line'"
fi

if run keel pci-assignable-remove "$PCI_DEVICE" && run keel pci-assignable-remove "$NIC_DEVICE" \
    && listed_as "not assignable"; then
    say "dom0: passthrough returned to the host: $line"
else
    say "dom0: passthrough assignable-remove failed: $PCI_DEVICE: '$line'"
fi

run keel list
say "dom0: passthrough checks done"
