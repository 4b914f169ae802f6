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
for word in $(cat /proc/cmdline); do
    case "$word" in
        keel.domu=*) mode=${word#keel.domu=} ;;
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
