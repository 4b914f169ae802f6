#!/bin/busybox sh
# /init of the DomU initramfs (built by xtask/src/guest/domu_initramfs.rs;
# Dom0 has it as /usr/lib/keel/domu-initrd.gz for `keel create`).
#
# What it does after reporting itself depends on `keel.domu=` on the kernel
# command line:
#   keel.domu=poweroff  power off at once (create/destroy cycles, on_poweroff)
#   keel.domu=spin      keep its vCPU busy forever (scheduling tests)
#   keel.domu=wrmsr     write the TSC-deadline MSR in a tight loop, forever
#                       (scheduling tests: every write exits to Keel)
#   keel.domu=tick      say "domu: tick N" every second, forever (a witness
#                       that keeps running while other domains misbehave)
#   keel.domu=probe     read and write guest-physical addresses outside its
#                       RAM (isolation checks), then spin
#   keel.domu=triple    reboot at once; with `reboot=t` on the command line
#                       Linux does that with a triple fault
#   keel.domu=hostile   run `keel-stress hostile` (seed, seconds and groups
#                       left out from keel.hostile-seed=, keel.hostile-seconds=
#                       and keel.hostile-skip=), say
#                       "domu: hostile done (keel-stress status N)", then idle
#   keel.domu=disk      PCI passthrough: load the IDE disk's drivers (ata_piix
#                       and what it needs), find the disk Keel's assigned
#                       PIIX3 IDE function leads to, read its sectors 0 and 1
#                       and say what they hold, what the function is and how
#                       many of its interrupts came; then bind the assigned
#                       e1000 (8086:100e) to uio_pci_generic and run
#                       `keel-stress intx` on it (its level-triggered INTx),
#                       saying "domu: intx ok: ..." or "domu: intx FAILED:
#                       ..."; then "domu: disk done" (or "domu: disk FAILED:
#                       ..."), then idle
#   keel.domu=nvme      PCI passthrough with VT-d: find the namespace of
#                       the NVMe controller Keel assigned (the kernel's
#                       built-in nvme driver probes it at boot, on INTx),
#                       read its sectors 0 and 1 and say what they hold,
#                       what the function is and how many of its interrupts
#                       came; then "domu: nvme done" (or "domu: nvme FAILED:
#                       ..."), then idle
#   keel.domu=split-blk the split block device: load the virtio drivers, find
#                       the two virtio-blk disks Dom0's backends serve
#                       (/dev/vda read-write ext4, /dev/vdb read-only), check
#                       their contents against the sums on vda, write and read
#                       back through vda, see a write to vdb refused; one
#                       "domu: split-blk ..." line per check, then
#                       "domu: split-blk done" (or "domu: split-blk FAILED:
#                       ..."), then idle
#   keel.domu=split-net the split network device: load the virtio drivers
#                       and virtio_net, bring the NIC up with the address
#                       keel.net-ip= (/24), ping the other DomU (keel.net-peer=)
#                       and Dom0 (10.0.0.1, on keel0) until they answer, then
#                       as keel.net-role=server receive a TCP stream (busybox
#                       nc) or as keel.net-role=client send one; one
#                       "domu: split-net ..." line per step, then
#                       "domu: split-net done" (or "domu: split-net FAILED:
#                       ..."), then idle
#   (none)              a busybox shell on the console, for `keel console`;
#                       the domain powers off when the shell exits
# Dom0's checks (xtask/guest/domu-*test.sh) wait for the lines these say.
# In every mode the ACPI power button (`keel shutdown`) powers the domain
# off through busybox acpid (start_power_button below).

# --install needs /proc/self/exe to find the binary its links point to.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin

mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Through the kernel log, as in Dom0's /init: printk writes each line whole,
# so a kernel message never splits a report line.
echo on > /proc/sys/kernel/printk_devkmsg
say() {
    echo "$*" > /dev/kmsg
}

say "domu: userspace started"
say "domu: kernel $(uname -r)"
# New on every boot: tells a reboot's second boot from the first.
say "domu: boot id $(cat /proc/sys/kernel/random/boot_id)"

mode=
hostile_seed=2
hostile_seconds=45
hostile_skip=
net_ip=
net_peer=
net_role=
for word in $(cat /proc/cmdline); do
    case "$word" in
        keel.domu=*) mode=${word#keel.domu=} ;;
        keel.hostile-seed=*) hostile_seed=${word#keel.hostile-seed=} ;;
        keel.hostile-seconds=*) hostile_seconds=${word#keel.hostile-seconds=} ;;
        keel.hostile-skip=*) hostile_skip=${word#keel.hostile-skip=} ;;
        keel.net-ip=*) net_ip=${word#keel.net-ip=} ;;
        keel.net-peer=*) net_peer=${word#keel.net-peer=} ;;
        keel.net-role=*) net_role=${word#keel.net-role=} ;;
    esac
done

# The power button. `keel shutdown` pulses the interrupt of the Generic
# Event Device (\_SB.GED0, ACPI0013) in Keel's DSDT; its _EVT notifies
# \_SB.PWRB (PNP0C0C), and Linux's button driver reports a KEY_POWER press
# on an input device. Debian builds that driver and evdev (/dev/input/event*)
# as modules (CONFIG_ACPI_BUTTON=m, CONFIG_INPUT_EVDEV=m), loaded here when
# the image carries them. busybox acpid (1.35) reads /dev/input/event0,
# event1, ... up to the first missing one, looks each event up in
# /etc/acpi.map (type name, type in hex, code name, code in decimal, value,
# description: a KEY_POWER press), finds the action whose key the
# description contains in /etc/acpid.conf, and runs /etc/acpi/<action>.
start_power_button() {
    for module in evdev button; do
        if [ -e "/lib/modules/$module.ko" ] && ! insmod "/lib/modules/$module.ko"; then
            say "domu: power button setup: insmod /lib/modules/$module.ko failed"
        fi
    done
    if [ ! -e /dev/input/event0 ]; then
        say "domu: no input device, so no power button (keel shutdown cannot reach this domain)"
        return
    fi
    mkdir -p /etc/acpi
    echo "EV_KEY 01 KEY_POWER 116 1 button/power PWRB 00000080" > /etc/acpi.map
    echo "PWRB power-button" > /etc/acpid.conf
    # The second before powering off lets Dom0, which follows this console
    # with `keel console`, read the line: with on_poweroff = "destroy" the
    # console goes with the domain.
    cat > /etc/acpi/power-button <<'HANDLER'
#!/bin/sh
echo "domu: power button pressed, powering off" > /dev/kmsg
sleep 1
exec poweroff -f
HANDLER
    chmod 755 /etc/acpi/power-button
    # It daemonizes; its log (each event, and the handler's output) goes
    # to the kernel log, as there is no /var/log.
    if acpid -l /dev/kmsg; then
        say "domu: acpid started: the power button powers off"
    else
        say "domu: acpid failed to start, so no power button"
    fi
}
start_power_button

# Guest-physical addresses outside a 96 MiB DomU's RAM and devices. In
# Dom0's address space 0xc0000000 holds the management function's registers
# (MAGIC "KEEL" = 0x4c45454b at 0, DOORBELL at 8) and 0xc0200000 its shared
# memory; 0x08000000 and 0x10000000 lie above this DomU's RAM but inside
# Dom0's; 0xfed00000 is where a PC has its HPET (Keel's platform has none).
PROBE_ADDRESSES="0xc0000000 0xc0000008 0xc0200000 0xc0201000 0x08000000 0x10000000 0xfed00000"
PROBE_PATTERN=0x5a5aa5a5

# Each address: read it, write the pattern, read it again (busybox devmem,
# 32 bits, through /dev/mem). Dom0 judges the values (domu-faults-test.sh);
# the domain may also be stopped by Keel at the first access.
probe() {
    say "domu: probing addresses outside its RAM: $PROBE_ADDRESSES"
    for address in $PROBE_ADDRESSES; do
        first=$(devmem "$address" 32 2>&1)
        written=$(devmem "$address" 32 "$PROBE_PATTERN" 2>&1 && echo ok)
        second=$(devmem "$address" 32 2>&1)
        say "domu: probe $address read=$first write=$written reread=$second"
    done
    # A doorbell ring, as Dom0's tool makes one.
    devmem 0xc0000008 32 1
    say "domu: probes done"
}

# The parameters the kernel command line gives module $1, one a line
# (`libata.dma=0` gives `dma=0`): modprobe passes them, busybox insmod not.
module_params() {
    for word in $(cat /proc/cmdline); do
        case "$word" in
            "$1".*=*) echo "${word#"$1".}" ;;
        esac
    done
}

# The passthrough test's disk (tests/src/emulator/bochs.rs writes it):
# sectors 0 and 1 hold one line of text each, starting with this, the
# sector's number and a space.
DISK_MARKER=KEEL-PASSTHROUGH-SECTOR-
# The IDE disk's drivers, in load order (kernel::DOMU_MODULES: each after
# the modules it needs).
DISK_MODULES="scsi_common scsi_mod libata ata_piix sd_mod"
# Seconds to wait for the disk once its driver is loaded (libata probes
# the channels and the SCSI layer scans them in the background).
DISK_WAIT=120
# Seconds one sector's read may take: far more than a read whose interrupt
# arrives needs, far less than libata's retries of one whose interrupt is
# lost (30 s each, minutes in all, with dd unkillable meanwhile).
DISK_READ_WAIT=60

# The failure line, then what the interrupt controller counted and what
# the kernel said about the controller, for the reader.
disk_failed() {
    say "domu: disk FAILED: $*"
    grep -E 'CPU0|ata_piix|IO-APIC|XT-PIC' /proc/interrupts | while IFS= read -r line; do
        say "domu: disk interrupts: $line"
    done
    # ata_piix ignores a channel whose decode-enable bit (bit 7 of config
    # bytes 0x41 and 0x43, IDETIM) is clear.
    for function in /sys/bus/pci/devices/*; do
        case "$(cat "$function/class" 2> /dev/null)" in
            0x0101*) say "domu: disk config 0x40-0x43 of ${function##*/}: $(od -An -tx1 -j 64 -N 4 "$function/config")" ;;
        esac
    done
}

# The interrupts ata_piix has had, all its IRQs together.
ata_irq_total() {
    awk '/ata_piix/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) total += $i } END { print total + 0 }' \
        /proc/interrupts
}

# Each of ata_piix's IRQs and its count: "irq 14: 3, irq 15: 40".
ata_irq_list() {
    awk '/ata_piix/ {
        n = 0
        for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i
        irq = $1
        sub(":", "", irq)
        printf "%sirq %s: %d", sep, irq, n
        sep = ", "
    }' /proc/interrupts
}

# Reads sector $2 of /dev/$1 into /tmp/sector-$2. Returns 1 when dd has not
# finished after DISK_READ_WAIT s (it runs on in the background then), 2
# when it failed.
read_sector() {
    rm -f "/tmp/sector-$2" "/tmp/sector-$2.status"
    (
        dd if="/dev/$1" of="/tmp/sector-$2" bs=512 skip="$2" count=1 2> /dev/null
        echo $? > "/tmp/sector-$2.status"
    ) &
    waited=0
    while [ ! -e "/tmp/sector-$2.status" ]; do
        [ "$waited" -ge "$DISK_READ_WAIT" ] && return 1
        sleep 1
        waited=$((waited + 1))
    done
    [ "$(cat "/tmp/sector-$2.status")" = 0 ] || return 2
}

# Reads sectors 0 and 1 of /dev/$2 from the disk itself, not the page
# cache (the partition scan read sector 0), and says each one's text as
# "domu: $1 sector N: ..."; each must start with DISK_MARKER, its number and
# a space. On a failure calls $3 with the reason ($4 counts the driver's
# interrupts, $5 names the driver, for the message) and returns 1.
read_known_sectors() {
    sync
    echo 3 > /proc/sys/vm/drop_caches
    for sector in 0 1; do
        read_sector "$2" "$sector"
        case $? in
            1)
                $3 "reading sector $sector of /dev/$2 did not finish within ${DISK_READ_WAIT} s ($($4) $5 interrupts, $irqs_before before the reads)"
                return 1
                ;;
            2)
                $3 "dd could not read sector $sector of /dev/$2 (status $(cat "/tmp/sector-$sector.status"))"
                return 1
                ;;
        esac
        text=$(tr -d '\n' < "/tmp/sector-$sector")
        case "$text" in
            "$DISK_MARKER$sector "*) say "domu: $1 sector $sector: $text" ;;
            *)
                $3 "sector $sector of /dev/$2 reads '$(echo "$text" | head -c 64)', not '$DISK_MARKER$sector ...'"
                return 1
                ;;
        esac
    done
}

# A PCI function's ids as lspci gives them ("8086:7010 class 010180") and
# its driver; $1 is its sysfs directory.
pci_function() {
    driver=$(readlink "$1/driver")
    echo "$(sed 's/^0x//' "$1/vendor"):$(sed 's/^0x//' "$1/device") class $(sed 's/^0x//' "$1/class") driver ${driver##*/}"
}

read_disk() {
    for module in $DISK_MODULES; do
        # shellcheck disable=SC2046 # one parameter a word
        if ! insmod "/lib/modules/$module.ko" $(module_params "$module"); then
            disk_failed "insmod /lib/modules/$module.ko $(module_params "$module")"
            return
        fi
    done
    say "domu: disk drivers loaded: $DISK_MODULES (libata $(module_params libata | tr '\n' ' '))"
    # The PCI probe runs within insmod; only the disks' come later.
    bound=$(ls -d /sys/bus/pci/drivers/ata_piix/0000:* 2> /dev/null | sed 's|.*/||' | tr '\n' ' ')
    if [ -z "$bound" ]; then
        disk_failed "ata_piix took no PCI function (its probe failed, or it found none)"
        return
    fi
    disk=
    waited=0
    while :; do
        for block in /sys/block/sd*; do
            if [ -e "$block" ]; then
                disk=${block##*/}
                break
            fi
        done
        [ -n "$disk" ] && break
        if [ "$waited" -ge "$DISK_WAIT" ]; then
            disk_failed "no disk (/sys/block/sd*) ${DISK_WAIT} s after loading ata_piix"
            return
        fi
        sleep 1
        waited=$((waited + 1))
    done
    sectors=$(cat "/sys/block/$disk/size")
    # The disk's sysfs path runs through the PCI function of its controller.
    path=$(readlink -f "/sys/block/$disk")
    pci=$(echo "$path" | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | tail -n 1)
    say "domu: disk $disk: $sectors sectors, behind PCI function ${pci:-none} ($path)"
    if [ -z "$pci" ]; then
        disk_failed "$disk is behind no PCI function"
        return
    fi
    say "domu: disk pci $pci $(pci_function "/sys/bus/pci/devices/$pci")"
    if [ ! -b "/dev/$disk" ]; then
        # shellcheck disable=SC2046 # major and minor
        mknod "/dev/$disk" b $(tr ':' ' ' < "/sys/block/$disk/dev")
    fi
    irqs_before=$(ata_irq_total)
    read_known_sectors disk "$disk" disk_failed ata_irq_total ata_piix || return
    irqs=$(ata_irq_total)
    say "domu: disk irqs $irqs ($((irqs - irqs_before)) during the reads; $(ata_irq_list))"
    if [ "$irqs" -le "$irqs_before" ]; then
        disk_failed "no ata_piix interrupt during the reads"
        return
    fi
    say "domu: disk done"
}

# The assigned e1000's level-triggered INTx (keel.domu=disk): its function
# bound to uio_pci_generic, `keel-stress intx` raises causes through its
# registers and counts the interrupts (see guest-tools/src/intx_ops.rs).
INTX_IDS=8086:100e
INTX_ROUNDS=10
check_intx() {
    function=
    for device in /sys/bus/pci/devices/*; do
        ids="$(sed 's/^0x//' "$device/vendor"):$(sed 's/^0x//' "$device/device")"
        [ "$ids" = "$INTX_IDS" ] && function=${device##*/}
    done
    if [ -z "$function" ]; then
        say "domu: intx FAILED: no $INTX_IDS function"
        return
    fi
    for module in uio uio_pci_generic; do
        if ! insmod "/lib/modules/$module.ko"; then
            say "domu: intx FAILED: insmod /lib/modules/$module.ko"
            return
        fi
    done
    result=$(/bin/keel-stress intx "$function" "$INTX_ROUNDS" 2>&1)
    status=$?
    irq=$(cat "/sys/bus/pci/devices/$function/irq" 2> /dev/null)
    counted=$(awk -v irq="$irq:" '$1 == irq { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }' /proc/interrupts)
    if [ "$status" -eq 0 ]; then
        say "domu: intx ok: $function irq $irq ($counted in /proc/interrupts): ${result#keel-stress: }"
    else
        say "domu: intx FAILED: $function irq $irq ($counted in /proc/interrupts): $result"
        grep -E "^ *$irq:" /proc/interrupts | while IFS= read -r line; do
            say "domu: intx interrupts: $line"
        done
    fi
}

# PCI passthrough with VT-d (keel.domu=nvme; Dom0's passthrough-kvm-test.sh
# watches it): the NVMe controller QEMU gives the boot test kvm-passthrough,
# its namespace an image whose sectors 0 and 1 hold DISK_MARKER's text
# (tests/src/emulator/qemu.rs). Debian's cloud kernel has the NVMe driver
# built in (nvme and nvme-core: no module to load), so it binds the
# function during boot. The DomU sees the controller's MSI-X (Keel traps its
# table): the driver takes one vector per queue ("nvme0q0", "nvme0q1" in
# /proc/interrupts), counted together below.
NVME_DISK=nvme0n1
# Seconds to wait for the namespace from the start of /init.
NVME_WAIT=120

# The interrupts the NVMe queues have had, all their IRQs together.
nvme_irq_total() {
    awk '/nvme[0-9]+q[0-9]+/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) total += $i } END { print total + 0 }' \
        /proc/interrupts
}

# Each of their IRQs and its count: "irq 24: 14".
nvme_irq_list() {
    awk '/nvme[0-9]+q[0-9]+/ {
        n = 0
        for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i
        irq = $1
        sub(":", "", irq)
        printf "%sirq %s: %d", sep, irq, n
        sep = ", "
    }' /proc/interrupts
}

# The failure line, then what the interrupt controller counted and what the
# kernel said about the controller, for the reader.
nvme_failed() {
    say "domu: nvme FAILED: $*"
    grep -E 'CPU0|nvme|IO-APIC' /proc/interrupts | while IFS= read -r line; do
        say "domu: nvme interrupts: $line"
    done
    dmesg | grep -iE 'nvme|00:04\.0' | grep -v 'domu: ' | tail -n 12 | while IFS= read -r line; do
        say "domu: nvme kernel: $line"
    done
}

read_nvme() {
    waited=0
    while [ ! -e "/sys/block/$NVME_DISK" ]; do
        if [ "$waited" -ge "$NVME_WAIT" ]; then
            nvme_failed "no /sys/block/$NVME_DISK after ${NVME_WAIT} s (controllers: $(ls /sys/class/nvme 2> /dev/null | tr '\n' ' '); functions bound to nvme: $(ls -d /sys/bus/pci/drivers/nvme/0000:* 2> /dev/null | sed 's|.*/||' | tr '\n' ' '))"
            return
        fi
        sleep 1
        waited=$((waited + 1))
    done
    sectors=$(cat "/sys/block/$NVME_DISK/size")
    # The namespace's sysfs path runs through its controller's PCI function
    # (a multipath head node would sit under its subsystem instead: then
    # the controller's own link says).
    path=$(readlink -f "/sys/block/$NVME_DISK")
    pci=$(echo "$path" | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | tail -n 1)
    if [ -z "$pci" ]; then
        pci=$(readlink -f /sys/class/nvme/nvme0/device | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | tail -n 1)
    fi
    say "domu: nvme $NVME_DISK: $sectors sectors, behind PCI function ${pci:-none} ($path)"
    if [ -z "$pci" ]; then
        nvme_failed "$NVME_DISK is behind no PCI function"
        return
    fi
    say "domu: nvme pci $pci $(pci_function "/sys/bus/pci/devices/$pci")"
    if [ ! -b "/dev/$NVME_DISK" ]; then
        # shellcheck disable=SC2046 # major and minor
        mknod "/dev/$NVME_DISK" b $(tr ':' ' ' < "/sys/block/$NVME_DISK/dev")
    fi
    irqs_before=$(nvme_irq_total)
    read_known_sectors nvme "$NVME_DISK" nvme_failed nvme_irq_total nvme || return
    irqs=$(nvme_irq_total)
    say "domu: nvme irqs $irqs ($((irqs - irqs_before)) during the reads; $(nvme_irq_list))"
    if [ "$irqs" -le "$irqs_before" ]; then
        nvme_failed "no nvme interrupt during the reads"
        return
    fi
    say "domu: nvme done"
}

# The split block device (keel.domu=split-blk; Dom0's split-blk-test.sh
# watches it): virtio-blk disks whose requests a Dom0 backend process
# serves from image files (xtask/src/guest/split_disks.rs makes them). The
# virtio drivers, in load order (kernel::DOMU_MODULES: each after the
# modules it needs); only this mode loads them.
SPLIT_BLK_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
# Seconds to wait for /dev/vda and /dev/vdb once virtio_blk is loaded.
SPLIT_BLK_WAIT=60
# vda: the 16 MiB ext4 file system, read-write; vdb: read-only, 2048 whole
# sectors (its image's last 300 bytes are no whole sector).
SPLIT_RW_SECTORS=32768
SPLIT_RO_SECTORS=2048
# What the first boot writes to vda's persist.txt; a later boot finds it.
SPLIT_BLK_TOKEN=boot-1
# MiB written to vda and read back after dropping the page cache.
SPLIT_BLK_BIG_MIB=4

# The failure line, then what the kernel said about the disks.
split_blk_failed() {
    say "domu: split-blk FAILED: $*"
    dmesg | grep -E 'virtio|vd[a-z]|EXT4|blk_update|I/O error|Buffer I/O' | grep -v 'domu: ' | tail -n 12 \
        | while IFS= read -r line; do
            say "domu: split-blk kernel: $line"
        done
}

# Field $2 of /sys/block/$1/stat (1: reads, 3: sectors read, 5: writes,
# 7: sectors written).
disk_stat() {
    awk -v field="$2" '{ print $field }' "/sys/block/$1/stat"
}

# "virtio1 behind PCI function 0000:00:05.0 1af4:1042 class 010000 driver
# virtio-pci": where the device whose sysfs directory is $1 sits.
virtio_place() {
    path=$(readlink -f "$1")
    pci=$(echo "$path" | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | tail -n 1)
    virtio=$(echo "$path" | grep -oE 'virtio[0-9]+' | tail -n 1)
    if [ -n "$pci" ]; then
        echo "${virtio:-no virtio device} behind PCI function $pci $(pci_function "/sys/bus/pci/devices/$pci")"
    else
        echo "${virtio:-no virtio device} behind no PCI function ($path)"
    fi
}

# The same for disk $1.
virtio_disk_place() {
    virtio_place "/sys/block/$1"
}

# Reads the first $2 sectors of /dev/$1 into the file $3 in one go, with
# O_DIRECT (from the device, not the page cache; busybox dd's buffer is
# page-aligned); fails unless they all came.
read_sectors() {
    rm -f "$3"
    dd if="/dev/$1" of="$3" bs=$(($2 * 512)) count=1 iflag=direct 2> /dev/null || return 1
    [ "$(stat -c %s "$3")" -eq $(($2 * 512)) ]
}

split_blk() {
    for module in $SPLIT_BLK_MODULES; do
        if ! insmod "/lib/modules/$module.ko"; then
            split_blk_failed "insmod /lib/modules/$module.ko"
            return
        fi
    done
    say "domu: split-blk drivers loaded: $SPLIT_BLK_MODULES"
    waited=0
    while [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; do
        if [ "$waited" -ge "$SPLIT_BLK_WAIT" ]; then
            split_blk_failed "no /dev/vda and /dev/vdb ${SPLIT_BLK_WAIT} s after loading virtio_blk (disks: $(ls /sys/block | tr '\n' ' '); virtio devices: $(ls /sys/bus/virtio/devices 2> /dev/null | tr '\n' ' '))"
            return
        fi
        sleep 1
        waited=$((waited + 1))
    done
    # In the config's order: the read-write ext4 disk, then the read-only one.
    for disk in vda vdb; do
        say "domu: split-blk $disk: $(cat "/sys/block/$disk/size") sectors, ro=$(cat "/sys/block/$disk/ro"), $(virtio_disk_place "$disk")"
    done
    if [ "$(cat /sys/block/vda/size)" != "$SPLIT_RW_SECTORS" ] || [ "$(cat /sys/block/vda/ro)" != 0 ]; then
        split_blk_failed "vda is not the read-write $SPLIT_RW_SECTORS-sector disk: $(cat /sys/block/vda/size) sectors, ro=$(cat /sys/block/vda/ro)"
        return
    fi

    # --- vda: the ext4 file system -------------------------------------------
    mkdir -p /mnt
    if ! mount -t ext4 /dev/vda /mnt; then
        split_blk_failed "mount -t ext4 /dev/vda /mnt"
        return
    fi
    say "domu: split-blk mounted vda (ext4): $(ls /mnt | tr '\n' ' ')"
    if ! (cd /mnt && sha256sum -c -s data.sha256); then
        split_blk_failed "data.bin does not match data.sha256 ($(cd /mnt && sha256sum data.bin), expected $(cat /mnt/data.sha256))"
        umount /mnt
        return
    fi
    say "domu: split-blk data.bin matches data.sha256: $(cat /mnt/data.sha256)"
    ro_sum=$(cat /mnt/ro.sha256 2> /dev/null)
    if [ -e /mnt/persist.txt ]; then
        say "domu: split-blk persisted $(cat /mnt/persist.txt)"
    else
        if ! echo "$SPLIT_BLK_TOKEN" > /mnt/persist.txt || ! sync; then
            split_blk_failed "cannot write persist.txt to vda"
            umount /mnt
            return
        fi
        say "domu: split-blk wrote persist.txt ($SPLIT_BLK_TOKEN), synced"
        split_blk_first_boot=1
    fi
    # Large writes: the block layer merges them into requests of many
    # segments. Compared with the original (in /tmp, RAM the page cache
    # cannot drop) once read back from the disk: cmp costs far less than
    # summing 8 MiB, minutes of Bochs' time.
    if ! dd if=/dev/urandom of=/tmp/split-blk-big bs=1048576 count="$SPLIT_BLK_BIG_MIB" iflag=fullblock 2> /dev/null; then
        split_blk_failed "cannot take $SPLIT_BLK_BIG_MIB MiB from /dev/urandom"
        umount /mnt
        return
    fi
    writes_before=$(disk_stat vda 5)
    written_before=$(disk_stat vda 7)
    if ! cp /tmp/split-blk-big /mnt/big.bin || ! sync; then
        split_blk_failed "cannot write big.bin ($SPLIT_BLK_BIG_MIB MiB) to vda"
        umount /mnt
        return
    fi
    writes=$(($(disk_stat vda 5) - writes_before))
    sectors=$(($(disk_stat vda 7) - written_before))
    echo 3 > /proc/sys/vm/drop_caches
    reads_before=$(disk_stat vda 1)
    if ! cmp -s /tmp/split-blk-big /mnt/big.bin; then
        split_blk_failed "big.bin read back after drop_caches differs from what was written: $(cmp /tmp/split-blk-big /mnt/big.bin 2>&1 | head -n 1)"
        umount /mnt
        return
    fi
    reads=$(($(disk_stat vda 1) - reads_before))
    rm -f /tmp/split-blk-big
    say "domu: split-blk big.bin ($SPLIT_BLK_BIG_MIB MiB) read back intact after drop_caches: $writes write requests ($sectors sectors), $reads read requests"
    rm -f /mnt/big.bin
    if ! umount /mnt; then
        split_blk_failed "umount /mnt"
        return
    fi
    say "domu: split-blk unmounted vda"

    # --- vdb: read-only, its whole sectors only --------------------------------
    ro=$(cat /sys/block/vdb/ro)
    size=$(cat /sys/block/vdb/size)
    if [ "$ro" != 1 ] || [ "$size" != "$SPLIT_RO_SECTORS" ]; then
        split_blk_failed "vdb is not a read-only $SPLIT_RO_SECTORS-sector disk: ro=$ro, $size sectors"
        return
    fi
    say "domu: split-blk vdb is read-only with $size sectors"
    if ! read_sectors vdb "$SPLIT_RO_SECTORS" /tmp/split-blk-vdb; then
        split_blk_failed "cannot read vdb's $SPLIT_RO_SECTORS sectors"
        return
    fi
    first=$(sha256sum < /tmp/split-blk-vdb)
    if [ -z "$ro_sum" ] || [ "$first" != "$ro_sum" ]; then
        split_blk_failed "vdb's $SPLIT_RO_SECTORS sectors sum to '$first', ro.sha256 says '$ro_sum'"
        return
    fi
    say "domu: split-blk vdb matches ro.sha256: $first"
    if dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=notrunc oflag=direct 2> /tmp/split-blk-write; then
        split_blk_failed "a write to the read-only vdb succeeded"
        return
    fi
    # dd's error, not its record counts.
    refusal=$(grep -v ' records ' /tmp/split-blk-write | head -n 1)
    if ! read_sectors vdb "$SPLIT_RO_SECTORS" /tmp/split-blk-vdb-after; then
        split_blk_failed "cannot read vdb's $SPLIT_RO_SECTORS sectors after its refused write"
        return
    fi
    if ! cmp -s /tmp/split-blk-vdb /tmp/split-blk-vdb-after; then
        split_blk_failed "vdb changed after its refused write: $(cmp /tmp/split-blk-vdb /tmp/split-blk-vdb-after 2>&1 | head -n 1)"
        return
    fi
    rm -f /tmp/split-blk-vdb /tmp/split-blk-vdb-after
    say "domu: split-blk vdb write refused (${refusal:-dd failed}), contents unchanged"
    if [ -n "$split_blk_first_boot" ]; then
        split_blk_hostile || return
    else
        # One line per pass over vda: Dom0 sees the reads go on (across a
        # restart of its backend).
        (
            pass=0
            while :; do
                dd if=/dev/vda of=/dev/null bs=65536 iflag=direct 2> /dev/null
                pass=$((pass + 1))
                say "domu: split-blk read pass $pass"
            done
        ) &
        say "domu: split-blk reading vda until destroyed"
    fi
    say "domu: split-blk done"
}

# A misbehaving frontend (first boot only): `keel-stress virtio-hostile`
# takes vdb's function from its driver and hands the device malformed
# chains (loops, indices and addresses out of range, indirect tables it
# did not negotiate, a ring rewritten under the backend, a write to the
# read-only disk), checking after each that a reset brings the device back;
# then vda, on the same backend, must still serve its data.
split_blk_hostile() {
    vdb_pci=$(readlink -f /sys/block/vdb | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]' | tail -n 1)
    if ! keel-stress virtio-hostile "$vdb_pci" > /tmp/split-blk-hostile 2>&1; then
        while IFS= read -r line; do
            say "domu: split-blk hostile: $line"
        done < /tmp/split-blk-hostile
        split_blk_failed "keel-stress virtio-hostile $vdb_pci: $(grep -m 1 FAILED /tmp/split-blk-hostile)"
        return 1
    fi
    scenarios=$(grep -cE 'virtio-hostile [a-z-]+ (ok|skipped)' /tmp/split-blk-hostile)
    say "domu: split-blk hostile frontend on vdb ($vdb_pci): $scenarios scenarios survived, $(grep -c 'virtio-hostile [a-z-]* ok' /tmp/split-blk-hostile) ok"
    if ! mount -t ext4 -o ro /dev/vda /mnt; then
        split_blk_failed "mount -o ro /dev/vda after the hostile frontend"
        return 1
    fi
    echo 3 > /proc/sys/vm/drop_caches
    if ! (cd /mnt && sha256sum -c data.sha256 > /dev/null 2>&1); then
        umount /mnt
        split_blk_failed "vda's data.bin no longer matches after the hostile frontend"
        return 1
    fi
    umount /mnt
    say "domu: split-blk vda still served after the hostile frontend"
}

# The split network device (keel.domu=split-net; Dom0's split-net-test.sh
# watches two of these, a server and a client): a virtio-net NIC whose
# frames a Dom0 backend process carries to Dom0's switch (`keel switch`),
# which joins it to the other DomU's NIC and to Dom0's TAP interface keel0.
# The virtio transport (split-blk's drivers but virtio_blk), then virtio_net
# and what it needs, in load order (kernel::DOMU_MODULES: each after the
# modules it needs); only this mode loads them.
SPLIT_NET_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_console"
# Seconds to wait for the NIC once virtio_net is loaded (it binds within
# insmod; this is slack).
SPLIT_NET_WAIT=30
# Dom0's address on keel0 (split-net-test.sh gives it): the /24 both DomUs
# are on.
SPLIT_NET_DOM0=10.0.0.1
SPLIT_NET_PREFIX=24
# Seconds of this DomU's clock to keep pinging an address until it answers:
# the other DomU boots on the same emulated CPU meanwhile.
SPLIT_NET_PING_WAIT=600
# The transfer: TCP port, MiB of /dev/urandom the client sends (summing
# costs Bochs about 20 s of the DomU's clock per MiB, on each side).
SPLIT_NET_PORT=5001
SPLIT_NET_MIB=2
# Seconds the server waits for the connection and the client keeps trying
# to connect, and seconds one transfer may take once connected.
SPLIT_NET_CONNECT_WAIT=600
SPLIT_NET_TRANSFER_WAIT=600
# The files: what the client sends, what the server received, nc's errors,
# and the FIFO the server's nc reads as its standard input.
SPLIT_NET_SEND=/tmp/split-net-send
SPLIT_NET_RECV=/tmp/split-net-recv
SPLIT_NET_ERRORS=/tmp/split-net-nc
SPLIT_NET_HOLD=/tmp/split-net-hold
# `cargo xtask bench io`'s network part (keel.net-bench=1 on the command
# line, domu-bench-net-{a,b}.toml; Dom0's bench-io.sh drives the client
# through its console): after the pings the client sends a warm-up of
# SPLIT_NET_BENCH_WARMUP_KIB KiB, says "domu: split-net bench ready ...",
# waits for "go", idles SPLIT_NET_BENCH_PAUSE s, sends SPLIT_NET_BENCH_MIB
# MiB of zeros (no sums: the time is the network path's) timed on its clock,
# says "domu: split-net bench sent ...", waits for "rtt", idles the pause
# again, pings the server SPLIT_NET_BENCH_PINGS times every
# SPLIT_NET_BENCH_INTERVAL s and says "domu: split-net bench result ...".
# The server takes both connections into /dev/null.
SPLIT_NET_BENCH_MIB=4
SPLIT_NET_BENCH_WARMUP_KIB=512
SPLIT_NET_BENCH_PAUSE=2
SPLIT_NET_BENCH_PINGS=20
SPLIT_NET_BENCH_INTERVAL=0.2
SPLIT_NET_BENCH_SEND=/tmp/split-net-bench-send
SPLIT_NET_BENCH_WARMUP=/tmp/split-net-bench-warmup
SPLIT_NET_BENCH_PING=/tmp/split-net-bench-ping

# Seconds since this DomU booted (10 ms resolution).
split_net_now() {
    read -r seconds _idle < /proc/uptime
    echo "$seconds"
}

# Seconds from $1 (a split_net_now) to now, two decimals.
split_net_since() {
    awk -v start="$1" -v end="$(split_net_now)" 'BEGIN { printf "%.2f", end - start }'
}

# Whether $2 seconds have passed since $1.
split_net_expired() {
    awk -v start="$1" -v end="$(split_net_now)" -v limit="$2" 'BEGIN { exit !(end - start >= limit) }'
}

# The failure line, then what the kernel said about the NIC, its counters
# and the neighbours it knows.
split_net_failed() {
    say "domu: split-net FAILED: $*"
    dmesg | grep -E 'virtio|eth[0-9]|NETDEV|failover' | grep -v 'domu: ' | tail -n 12 \
        | while IFS= read -r line; do
            say "domu: split-net kernel: $line"
        done
    if [ -n "$split_net_iface" ] && [ -d "/sys/class/net/$split_net_iface/statistics" ]; then
        counters=
        for counter in rx_packets rx_bytes rx_dropped rx_errors tx_packets tx_bytes tx_dropped tx_errors; do
            counters="$counters $counter=$(cat "/sys/class/net/$split_net_iface/statistics/$counter")"
        done
        say "domu: split-net $split_net_iface counters:$counters, operstate $(cat "/sys/class/net/$split_net_iface/operstate")"
    fi
    ip neigh 2> /dev/null | while IFS= read -r line; do
        say "domu: split-net neighbour: $line"
    done
}

# The virtio-net interface: the one whose device virtio_net drives, else
# the first that is not lo; empty when there is none.
split_net_find_interface() {
    for dev in /sys/class/net/*; do
        driver=$(readlink "$dev/device/driver" 2> /dev/null)
        if [ "${driver##*/}" = virtio_net ]; then
            echo "${dev##*/}"
            return
        fi
    done
    for dev in /sys/class/net/*; do
        if [ -e "$dev" ] && [ "${dev##*/}" != lo ]; then
            echo "${dev##*/}"
            return
        fi
    done
}

# Pings $1 ($2 says who that is) once every second or two until it answers,
# for up to SPLIT_NET_PING_WAIT s; says the round trip, or fails.
split_net_ping() {
    ping_start=$(split_net_now)
    tries=0
    while :; do
        tries=$((tries + 1))
        if ping -c 1 -W 2 "$1" > /tmp/split-net-ping 2>&1; then
            rtt=$(grep -oE 'time=[0-9.]+ ms' /tmp/split-net-ping | head -n 1 | sed 's/^time=//')
            say "domu: split-net ping $1 ok rtt ${rtt:-?} ($2, at try $tries, $(split_net_since "$ping_start") s)"
            return 0
        fi
        if split_net_expired "$ping_start" "$SPLIT_NET_PING_WAIT"; then
            split_net_failed "no answer from $1 ($2) within $SPLIT_NET_PING_WAIT s ($tries pings; the last said: $(grep -v '^$' /tmp/split-net-ping | tail -n 1))"
            return 1
        fi
        sleep 1
    done
}

# The server: accepts one connection on SPLIT_NET_PORT and keeps what
# arrives until the client closes it.
split_net_server() {
    rm -f "$SPLIT_NET_RECV" "$SPLIT_NET_HOLD"
    if ! mkfifo "$SPLIT_NET_HOLD"; then
        split_net_failed "mkfifo $SPLIT_NET_HOLD"
        return 1
    fi
    say "domu: split-net listening on port $SPLIT_NET_PORT"
    # busybox nc (1.35, without the netcat-1.10 options) copies its
    # standard input to the connection too, and at that input's end shuts
    # its sending side down: the client's nc then ends at once, whatever it
    # had left to send. Its input is therefore a FIFO opened read-write,
    # which never ends. nc ends when the client closes the connection
    # (after all its data); -w bounds only the wait for the connection.
    start=$(split_net_now)
    timeout "$((SPLIT_NET_CONNECT_WAIT + SPLIT_NET_TRANSFER_WAIT))" \
        nc -w "$SPLIT_NET_CONNECT_WAIT" -l -p "$SPLIT_NET_PORT" <> "$SPLIT_NET_HOLD" > "$SPLIT_NET_RECV" 2> "$SPLIT_NET_ERRORS"
    status=$?
    if [ "$status" != 0 ]; then
        split_net_failed "nc -l -p $SPLIT_NET_PORT ended with status $status after $(split_net_since "$start") s (143: still running after $((SPLIT_NET_CONNECT_WAIT + SPLIT_NET_TRANSFER_WAIT)) s): $(head -n 1 "$SPLIT_NET_ERRORS") ($(stat -c %s "$SPLIT_NET_RECV" 2> /dev/null) bytes received)"
        return 1
    fi
    bytes=$(stat -c %s "$SPLIT_NET_RECV")
    sum=$(sha256sum < "$SPLIT_NET_RECV" | cut -d ' ' -f 1)
    say "domu: split-net received $bytes bytes sha256 $sum (nc ended after $(split_net_since "$start") s)"
    if [ "$bytes" != $((SPLIT_NET_MIB * 1048576)) ]; then
        split_net_failed "received $bytes bytes, not the $((SPLIT_NET_MIB * 1048576)) the client sends"
        return 1
    fi
}

# The client: SPLIT_NET_MIB MiB of /dev/urandom to the server's port,
# trying again while the server is not listening yet (busybox nc ends with
# status 1 on a refused connection, after -w s when nothing answers).
split_net_client() {
    if ! dd if=/dev/urandom of="$SPLIT_NET_SEND" bs=1048576 count="$SPLIT_NET_MIB" iflag=fullblock 2> /dev/null; then
        split_net_failed "cannot take $SPLIT_NET_MIB MiB from /dev/urandom"
        return 1
    fi
    bytes=$(stat -c %s "$SPLIT_NET_SEND")
    sum=$(sha256sum < "$SPLIT_NET_SEND" | cut -d ' ' -f 1)
    say "domu: split-net sending $bytes bytes sha256 $sum to $net_peer port $SPLIT_NET_PORT"
    connect_start=$(split_net_now)
    tries=0
    while :; do
        tries=$((tries + 1))
        start=$(split_net_now)
        # At its input's end nc shuts its sending side down and waits for
        # the server to close the connection: all data has arrived then.
        timeout "$SPLIT_NET_TRANSFER_WAIT" nc -w 10 "$net_peer" "$SPLIT_NET_PORT" \
            < "$SPLIT_NET_SEND" > /dev/null 2> "$SPLIT_NET_ERRORS"
        status=$?
        [ "$status" = 0 ] && break
        if split_net_expired "$connect_start" "$SPLIT_NET_CONNECT_WAIT"; then
            split_net_failed "nc $net_peer $SPLIT_NET_PORT: status $status at try $tries, ${SPLIT_NET_CONNECT_WAIT} s after the first (143: still running after $SPLIT_NET_TRANSFER_WAIT s): $(head -n 1 "$SPLIT_NET_ERRORS")"
            return 1
        fi
        sleep 2
    done
    say "domu: split-net sent $bytes bytes in $(split_net_since "$start") s (connected at try $tries)"
}

# Whether this is `bench io`'s run (keel.net-bench=1 on the command line).
split_net_bench_enabled() {
    for word in $(cat /proc/cmdline); do
        [ "$word" = keel.net-bench=1 ] && return 0
    done
    return 1
}

# Sets split_net_ns to the monotonic clock in nanoseconds (the third line
# of /proc/timer_list, "now at N nsecs"; shell builtins only, no process),
# as domu-bench-io.sh takes its times.
split_net_stamp() {
    { read -r _ && read -r _ && read -r _ _ split_net_ns _; } < /proc/timer_list
}

# Sets split_net_tx, split_net_rx (packets) and split_net_tx_bytes from the
# NIC's counters.
split_net_counts() {
    read -r split_net_tx < "/sys/class/net/$split_net_iface/statistics/tx_packets"
    read -r split_net_rx < "/sys/class/net/$split_net_iface/statistics/rx_packets"
    read -r split_net_tx_bytes < "/sys/class/net/$split_net_iface/statistics/tx_bytes"
}

# Waits for a console line containing $1 (Dom0 types it); fails when the
# console ends.
split_net_bench_wait_line() {
    while :; do
        if ! read -r line; then
            split_net_failed "the console ended while waiting for '$1'"
            return 1
        fi
        case "$line" in
            *"$1"*) return 0 ;;
        esac
    done
}

# Sends file $1 to the server as split_net_client does (trying again while
# the server is not listening); sets split_net_bench_ns (the successful
# nc, on this DomU's clock), split_net_bench_tx and split_net_bench_rx (the
# NIC's packets sent and received meanwhile), split_net_bench_tx_bytes and
# split_net_bench_tries.
split_net_bench_send() {
    connect_start=$(split_net_now)
    split_net_bench_tries=0
    while :; do
        split_net_bench_tries=$((split_net_bench_tries + 1))
        split_net_counts
        tx_before=$split_net_tx
        rx_before=$split_net_rx
        tx_bytes_before=$split_net_tx_bytes
        split_net_stamp
        start_ns=$split_net_ns
        timeout "$SPLIT_NET_TRANSFER_WAIT" nc -w 10 "$net_peer" "$SPLIT_NET_PORT" \
            < "$1" > /dev/null 2> "$SPLIT_NET_ERRORS"
        status=$?
        split_net_stamp
        split_net_counts
        [ "$status" = 0 ] && break
        if split_net_expired "$connect_start" "$SPLIT_NET_CONNECT_WAIT"; then
            split_net_failed "bench: nc $net_peer $SPLIT_NET_PORT < $1: status $status at try $split_net_bench_tries, ${SPLIT_NET_CONNECT_WAIT} s after the first (143: still running after $SPLIT_NET_TRANSFER_WAIT s): $(head -n 1 "$SPLIT_NET_ERRORS")"
            return 1
        fi
        sleep 2
    done
    split_net_bench_ns=$((split_net_ns - start_ns))
    split_net_bench_tx=$((split_net_tx - tx_before))
    split_net_bench_rx=$((split_net_rx - rx_before))
    split_net_bench_tx_bytes=$((split_net_tx_bytes - tx_bytes_before))
}

# The bench's server: two connections (the warm-up and the measured one),
# each into /dev/null, with split_net_server's FIFO as nc's input.
split_net_bench_server() {
    rm -f "$SPLIT_NET_HOLD"
    if ! mkfifo "$SPLIT_NET_HOLD"; then
        split_net_failed "mkfifo $SPLIT_NET_HOLD"
        return 1
    fi
    say "domu: split-net listening on port $SPLIT_NET_PORT"
    for transfer in warm-up measured; do
        split_net_counts
        rx_before=$split_net_rx
        read -r rx_bytes_before < "/sys/class/net/$split_net_iface/statistics/rx_bytes"
        start=$(split_net_now)
        timeout "$((SPLIT_NET_CONNECT_WAIT + SPLIT_NET_TRANSFER_WAIT))" \
            nc -w "$SPLIT_NET_CONNECT_WAIT" -l -p "$SPLIT_NET_PORT" <> "$SPLIT_NET_HOLD" > /dev/null 2> "$SPLIT_NET_ERRORS"
        status=$?
        if [ "$status" != 0 ]; then
            split_net_failed "bench: nc -l -p $SPLIT_NET_PORT for the $transfer transfer ended with status $status after $(split_net_since "$start") s: $(head -n 1 "$SPLIT_NET_ERRORS")"
            return 1
        fi
        split_net_counts
        read -r rx_bytes < "/sys/class/net/$split_net_iface/statistics/rx_bytes"
        say "domu: split-net bench received the $transfer transfer: rx_packets=$((split_net_rx - rx_before)) rx_bytes=$((rx_bytes - rx_bytes_before)) (nc ended after $(split_net_since "$start") s)"
    done
}

# The bench's client: the warm-up, "ready", the measured transfer on "go",
# the pings on "rtt", the result line.
split_net_bench_client() {
    # tsc_hz: the rate this kernel's clock runs at.
    . /lib/keel/tsc-hz.sh
    bytes=$((SPLIT_NET_BENCH_MIB * 1048576))
    warmup_bytes=$((SPLIT_NET_BENCH_WARMUP_KIB * 1024))
    if ! dd if=/dev/zero of="$SPLIT_NET_BENCH_SEND" bs=1048576 count="$SPLIT_NET_BENCH_MIB" 2> /dev/null \
        || ! dd if=/dev/zero of="$SPLIT_NET_BENCH_WARMUP" bs=1024 count="$SPLIT_NET_BENCH_WARMUP_KIB" 2> /dev/null; then
        split_net_failed "bench: cannot write $SPLIT_NET_BENCH_SEND and $SPLIT_NET_BENCH_WARMUP"
        return 1
    fi
    say "domu: split-net bench warm-up: $warmup_bytes bytes to $net_peer port $SPLIT_NET_PORT"
    split_net_bench_send "$SPLIT_NET_BENCH_WARMUP" || return 1
    tsc_hz=$(tsc_hz)
    say "domu: split-net bench ready warmup_bytes=$warmup_bytes warmup_ns=$split_net_bench_ns bytes=$bytes tsc_hz=$tsc_hz"

    # --- the measured transfer ------------------------------------------------------------------
    split_net_bench_wait_line go || return 1
    say "domu: split-net bench go"
    sleep "$SPLIT_NET_BENCH_PAUSE"
    split_net_bench_send "$SPLIT_NET_BENCH_SEND" || return 1
    ns=$split_net_bench_ns
    tx_packets=$split_net_bench_tx
    rx_packets=$split_net_bench_rx
    tx_bytes=$split_net_bench_tx_bytes
    say "domu: split-net bench sent bytes=$bytes ns=$ns tx_packets=$tx_packets rx_packets=$rx_packets tx_bytes=$tx_bytes tries=$split_net_bench_tries"

    # --- the round trips ------------------------------------------------------------------------
    split_net_bench_wait_line rtt || return 1
    say "domu: split-net bench pinging $net_peer $SPLIT_NET_BENCH_PINGS times every $SPLIT_NET_BENCH_INTERVAL s"
    sleep "$SPLIT_NET_BENCH_PAUSE"
    ping -c "$SPLIT_NET_BENCH_PINGS" -i "$SPLIT_NET_BENCH_INTERVAL" -W 5 "$net_peer" > "$SPLIT_NET_BENCH_PING" 2>&1
    answered=$(grep -oE '[0-9]+ packets received' "$SPLIT_NET_BENCH_PING" | sed 's/ .*//')
    # busybox ping: "round-trip min/avg/max = 0.063/0.068/0.073 ms".
    rtt=$(grep -oE 'min/avg/max = [0-9.]+/[0-9.]+/[0-9.]+' "$SPLIT_NET_BENCH_PING" | sed 's/^min\/avg\/max = //')
    if [ "$answered" != "$SPLIT_NET_BENCH_PINGS" ] || [ -z "$rtt" ]; then
        split_net_failed "bench: $net_peer answered ${answered:-0} of $SPLIT_NET_BENCH_PINGS pings: $(grep -v '^$' "$SPLIT_NET_BENCH_PING" | tail -n 1)"
        return 1
    fi
    rtt_min=${rtt%%/*}
    rtt_max=${rtt##*/}
    rtt_avg=${rtt#*/}
    rtt_avg=${rtt_avg%/*}
    say "domu: split-net bench result rtt_min_ms=$rtt_min rtt_avg_ms=$rtt_avg rtt_max_ms=$rtt_max pings=$answered bytes=$bytes ns=$ns tx_packets=$tx_packets rx_packets=$rx_packets tx_bytes=$tx_bytes tsc_hz=$tsc_hz"
}

# The virtio console, when the config gives one (virtio_console = true: the
# server's; virtio device id 3): a background job holds /dev/hvc0 open,
# says "domu: hvc0 hello" on it, then answers each line typed there with
# "domu: hvc0 polo <line>" (split-net-test.sh types one through
# `keel console --hvc`). Raw mode without echo, so the answer is all that
# comes back.
split_net_console() {
    grep -qx 0x0003 /sys/bus/virtio/devices/*/device 2> /dev/null || return 0
    waited=0
    while [ ! -c /dev/hvc0 ]; do
        if [ "$waited" -ge "$SPLIT_NET_WAIT" ]; then
            split_net_failed "a virtio console but no /dev/hvc0 ${SPLIT_NET_WAIT} s after loading virtio_console"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    (
        stty raw -echo 2> /dev/null
        echo "domu: hvc0 hello"
        while IFS= read -r line; do
            echo "domu: hvc0 polo $line"
        done
    ) < /dev/hvc0 > /dev/hvc0 2> /dev/null &
    say "domu: split-net hvc0 answering: said hello, answers each line"
}

split_net() {
    case "$net_role" in
        server | client) ;;
        *)
            split_net_failed "keel.net-role= must be server or client, not '$net_role'"
            return
            ;;
    esac
    if [ -z "$net_ip" ] || [ -z "$net_peer" ]; then
        split_net_failed "keel.net-ip= and keel.net-peer= are needed (got '$net_ip' and '$net_peer')"
        return
    fi
    for module in $SPLIT_NET_MODULES; do
        if ! insmod "/lib/modules/$module.ko"; then
            split_net_failed "insmod /lib/modules/$module.ko"
            return
        fi
    done
    say "domu: split-net drivers loaded: $SPLIT_NET_MODULES"
    waited=0
    while :; do
        split_net_iface=$(split_net_find_interface)
        [ -n "$split_net_iface" ] && break
        if [ "$waited" -ge "$SPLIT_NET_WAIT" ]; then
            split_net_failed "no network interface but lo ${SPLIT_NET_WAIT} s after loading virtio_net (virtio devices: $(ls /sys/bus/virtio/devices 2> /dev/null | tr '\n' ' '))"
            return
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "domu: split-net $split_net_iface mac $(cat "/sys/class/net/$split_net_iface/address"), $(virtio_place "/sys/class/net/$split_net_iface")"
    # IPv6 off on the NIC: no router solicitations or duplicate address
    # probes on the switch, only the test's own traffic.
    { echo 1 > "/proc/sys/net/ipv6/conf/$split_net_iface/disable_ipv6"; } 2> /dev/null
    if ! ip link set lo up || ! ip addr add "$net_ip/$SPLIT_NET_PREFIX" dev "$split_net_iface" \
        || ! ip link set "$split_net_iface" up; then
        split_net_failed "cannot bring $split_net_iface up with $net_ip/$SPLIT_NET_PREFIX"
        return
    fi
    say "domu: split-net $split_net_iface up: $net_ip/$SPLIT_NET_PREFIX, the $net_role, peer $net_peer, mtu $(cat "/sys/class/net/$split_net_iface/mtu")"
    split_net_console || return
    split_net_ping "$net_peer" "the other DomU" || return
    split_net_ping "$SPLIT_NET_DOM0" "Dom0 on keel0" || return
    if split_net_bench_enabled; then
        # `bench io` (keel.net-bench=1): the measured transfer and pings.
        if [ "$net_role" = server ]; then
            split_net_bench_server || return
        else
            split_net_bench_client || return
        fi
    elif [ "$net_role" = server ]; then
        split_net_server || return
    else
        split_net_client || return
    fi
    say "domu: split-net done"
}

case "$mode" in
    poweroff)
        say "domu: powering off (keel.domu=poweroff)"
        poweroff -f
        ;;
    spin)
        say "domu: spinning (keel.domu=spin)"
        while :; do :; done
        ;;
    wrmsr)
        # 0x6e0 is IA32_TSC_DEADLINE, which Keel intercepts (its local APIC
        # timer): each write exits, and re-arms Keel's timer for this vCPU,
        # which must never stretch its time slice. Each write sets the
        # deadline 100000 TSC cycles ahead (10 ms at the 10 MHz TSC Bochs
        # gives), so it keeps moving ahead of the clock while the loop runs.
        if ! insmod /lib/modules/msr.ko allow_writes=on; then
            say "domu: wrmsr setup failed: insmod /lib/modules/msr.ko"
        elif [ ! -c /dev/cpu/0/msr ]; then
            say "domu: wrmsr setup failed: no /dev/cpu/0/msr"
        else
            say "domu: wrmsr loop started (keel.domu=wrmsr: MSR 0x6e0, tsc+100000)"
            keel-stress wrmsr 0x6e0 forever tsc+100000
            say "domu: wrmsr loop ended (keel-stress status $?)"
        fi
        ;;
    tick)
        say "domu: ticking every second (keel.domu=tick)"
        tick=0
        while :; do
            tick=$((tick + 1))
            say "domu: tick $tick"
            sleep 1
        done
        ;;
    probe)
        probe
        say "domu: spinning after the probes"
        while :; do :; done
        ;;
    triple)
        # `reboot=t`: Linux's "triple" method loads an empty IDT and raises
        # an exception, which the CPU cannot deliver: a triple fault.
        say "domu: rebooting; with reboot=t that is a triple fault (keel.domu=triple)"
        reboot -f
        ;;
    hostile)
        # The hostile guest (Dom0's hostile-test.sh watches it): MSRs through
        # the msr driver, ports through /dev/port, holes through /dev/mem.
        # Each line of keel-stress goes through the kernel log, whole.
        if ! insmod /lib/modules/msr.ko allow_writes=on; then
            say "domu: hostile setup: insmod /lib/modules/msr.ko failed"
        fi
        say "domu: hostile run started (keel.domu=hostile: keel-stress hostile --seed $hostile_seed --seconds $hostile_seconds --skip '$hostile_skip')"
        {
            keel-stress hostile --seed "$hostile_seed" --seconds "$hostile_seconds" --skip "$hostile_skip" 2>&1
            echo "keel-stress: exit status $?"
        } | while IFS= read -r line; do
            say "$line"
            case "$line" in
                "keel-stress: exit status "*) echo "${line##* }" > /tmp/hostile-status ;;
            esac
        done
        say "domu: hostile done (keel-stress status $(cat /tmp/hostile-status 2> /dev/null))"
        while :; do
            sleep 60
        done
        ;;
    disk)
        # PCI passthrough (Dom0's passthrough-test.sh watches it): the
        # PIIX3 IDE function's own driver on the real device, then the
        # e1000's INTx from user space.
        check_intx
        read_disk
        while :; do
            sleep 60
        done
        ;;
    nvme)
        # PCI passthrough with VT-d (Dom0's passthrough-kvm-test.sh watches
        # it): the NVMe controller's own driver, its DMA confined by Keel.
        read_nvme
        while :; do
            sleep 60
        done
        ;;
    split-blk)
        # The split block device (Dom0's split-blk-test.sh watches it, and
        # reboots the domain with `keel reboot`; after the second boot the
        # DomU keeps reading vda, so Dom0 destroys it with requests in
        # flight).
        split_blk
        while :; do
            sleep 60
        done
        ;;
    split-net)
        # The split network device (Dom0's split-net-test.sh watches two,
        # then pings both through keel0 and destroys them): the NIC stays
        # up while the domain idles.
        split_net
        while :; do
            sleep 60
        done
        ;;
    bench-io) /lib/keel/domu-bench-io.sh ;;
    "") ;;
    *)
        say "domu: unknown keel.domu=$mode, starting a shell"
        ;;
esac

echo
echo "Keel DomU: busybox shell on the console ('poweroff -f' or 'exit' powers off)."
setsid cttyhack sh
say "domu: console shell exited, powering off"
poweroff -f
