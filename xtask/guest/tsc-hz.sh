# Sourced, not run: shared by `cargo xtask bench io`'s Dom0 side
# (bench-io.sh, as /usr/lib/keel/tsc-hz.sh) and DomU side
# (domu-bench-io.sh, as /lib/keel/tsc-hz.sh); both report the rate their
# own clock runs at.
#
# The TSC rate the kernel's clock runs at, in Hz: its refined calibration if
# it made one, else the TSC rate it detected, else the processor's; 0 when
# the log holds none.
tsc_hz() {
    dmesg | awk '
        /tsc: Refined TSC clocksource calibration: [0-9.]+ MHz/ {
            refined = $0
            sub(/.*calibration: /, "", refined)
            sub(/ MHz.*/, "", refined)
        }
        /tsc: Detected [0-9.]+ MHz TSC/ && tsc == "" {
            tsc = $0
            sub(/.*Detected /, "", tsc)
            sub(/ MHz.*/, "", tsc)
        }
        /tsc: Detected [0-9.]+ MHz processor/ && processor == "" {
            processor = $0
            sub(/.*Detected /, "", processor)
            sub(/ MHz.*/, "", processor)
        }
        END {
            mhz = refined != "" ? refined : (tsc != "" ? tsc : processor)
            printf "%.0f\n", mhz * 1000000
        }'
}
