#!/bin/busybox sh
# /init of the DomU initramfs (built by xtask/src/guest/domu_initramfs.rs;
# Dom0 has it as /usr/lib/keel/domu-initrd.gz for `keel create`).
#
# What it does after reporting itself depends on `keel.domu=` on the kernel
# command line:
#   keel.domu=poweroff  power off at once (create/destroy cycles, on_poweroff)
#   keel.domu=spin      keep its vCPU busy forever (scheduling tests)
#   (none)              a busybox shell on the console, for `keel console`;
#                       the domain powers off when the shell exits

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

mode=
for word in $(cat /proc/cmdline); do
    case "$word" in
        keel.domu=*) mode=${word#keel.domu=} ;;
    esac
done

case "$mode" in
    poweroff)
        say "domu: powering off (keel.domu=poweroff)"
        poweroff -f
        ;;
    spin)
        say "domu: spinning (keel.domu=spin)"
        while :; do :; done
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
