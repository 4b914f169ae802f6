# Keel's built-in test guest: position-independent 64-bit code copied into
# a fresh domain and entered with RDI = mode, RSI = bench iterations.
#   mode 0 (selftest): exercises every exit class, checking each answer, and
#                      ends by touching unmapped memory (a contained fault).
#   mode 1 (bench):    times round trips of CPUID, VMCALL and port I/O with
#                      RDTSC and reports instructions per round trip.
#   mode 2 (contained): a REP OUTSB from a non-canonical address: Keel's
#                      emulation raises #GP, and with no IDT the guest
#                      triple-faults, which stops only this domain.
# Output goes through the debug-console port, one byte per OUT.

.section .rodata.test_guest, "a"
.global test_guest_start
.global test_guest_end
test_guest_start:
    cmp rdi, 1
    je bench
    cmp rdi, 2
    je contained_failure

selftest:
    call read_tsc                    # the TSC at the first instruction
    mov rbp, rax
    lea rsi, [rip + msg_started]
    call puts

    mov r15, 1                       # check 1: Keel's signature leaf
    mov eax, {CPUID_HV_LEAF}
    cpuid
    cmp ebx, {SIG_EBX}
    jne fail
    cmp ecx, {SIG_ECX}
    jne fail
    cmp edx, {SIG_EDX}
    jne fail
    mov r15, 2                       # check 2: hypervisor bit set, VMX hidden
    mov eax, 1
    xor ecx, ecx
    cpuid
    bt ecx, 31
    jnc fail
    bt ecx, 5
    jc fail
    lea rsi, [rip + msg_cpuid]
    call puts

    mov r15, 3                       # check 3: port reads
    in al, {DEBUG_PORT}
    cmp al, {DEBUG_PORT}
    jne fail
    mov dx, 0x1234                   # nothing there: reads all ones
    xor eax, eax
    in eax, dx
    cmp eax, -1
    jne fail
    lea rsi, [rip + msg_io]
    call puts

    mov r15, 4                       # check 4: hypercalls
    mov eax, {HC_VERSION}
    vmcall
    cmp rax, {ABI_VERSION}
    jne fail
    mov eax, 0x7fff                  # unknown call number
    vmcall
    cmp rax, -1
    jne fail
    lea rsi, [rip + msg_vmcall]
    call puts

    mov r15, 5                       # check 5: HLT returns
    hlt
    lea rsi, [rip + msg_hlt]
    call puts

    mov r15, 6                       # check 6: time slices expire while computing
    mov eax, {HC_TIMER_TICKS}
    vmcall
    mov rbx, rax
    mov r12d, 1000
1:  mov ecx, 200000
2:  dec ecx
    jnz 2b
    mov eax, {HC_TIMER_TICKS}
    vmcall
    cmp rax, rbx
    ja 3f
    dec r12d
    jnz 1b
    jmp fail
3:  lea rsi, [rip + msg_timer]
    call puts

    mov r15, 7                       # check 7: an unknown MSR raises #GP in the guest
    call install_idt
    xor r14d, r14d
    mov ecx, 0x4b564dff
    rdmsr
    cmp r14d, 1
    jne fail
    lea rsi, [rip + msg_msr]
    call puts

    mov r15, 8                       # check 8: INVD and WBINVD complete
    invd
    wbinvd
    lea rsi, [rip + msg_cache]
    call puts

    mov r15, 9                       # check 9: string port I/O
    cld
    lea rsi, [rip + msg_outs]        # REP OUTSB prints a whole line
    lea rcx, [rip + msg_outs_end]
    sub rcx, rsi
    mov dx, {DEBUG_PORT}
    rep outsb
    test rcx, rcx
    jnz fail
    lea rax, [rip + msg_outs_end]
    cmp rsi, rax
    jne fail
    sub rsp, 16
    mov qword ptr [rsp], 0
    mov rdi, rsp
    mov ecx, 4
    rep insb                         # four bytes from the debug port
    lea rax, [rsp + 4]
    cmp rdi, rax
    jne fail
    cmp dword ptr [rsp], {DEBUG_PORT} * 0x01010101
    jne fail
    cmp dword ptr [rsp + 4], 0       # nothing beyond the count
    jne fail
    mov dx, 0x1234                   # nothing there: all ones
    mov rdi, rsp
    mov ecx, 2
    rep insw
    cmp dword ptr [rsp], -1
    jne fail
    add rsp, 16
    lea rsi, [rip + msg_ins]
    call puts

    mov r15, 10                      # check 10: single-step and INT1 #DBs
    xor r13d, r13d                   # the #DB handler counts in R13 and
    xor eax, eax                     # keeps the return RIP in R12
    pushfq
    or qword ptr [rsp], 0x100        # TF: a #DB after the next instruction
    popfq
    cpuid                            # emulated by Keel
after_cpuid:
    cmp r13d, 1
    jne fail
    lea rax, [rip + after_cpuid]
    cmp r12, rax
    jne fail
    pushfq
    or qword ptr [rsp], 0x100
    popfq
    nop                              # native: Keel intercepts and reflects
after_nop:
    cmp r13d, 2
    jne fail
    lea rax, [rip + after_nop]
    cmp r12, rax
    jne fail
    .byte 0xf1                       # INT1 (ICEBP)
after_int1:
    cmp r13d, 3
    jne fail
    lea rax, [rip + after_int1]
    cmp r12, rax
    jne fail
    lea rsi, [rip + msg_debug]
    call puts

    mov r15, 11                      # check 11: the TSC started near zero
    mov rax, {TSC_START_BOUND}
    cmp rbp, rax
    jae fail
    lea rsi, [rip + msg_tsc]
    call puts

    mov eax, {HC_SELFTEST_DONE}
    xor edi, edi
    vmcall
    mov rax, qword ptr [{UNMAPPED_GPA}]   # must stop this domain
    lea rsi, [rip + msg_survived]
    call puts
    jmp fail

fail:
    lea rsi, [rip + msg_failed]
    call puts
    mov eax, {HC_SELFTEST_DONE}
    mov rdi, r15
    vmcall
    mov eax, {HC_DOMAIN_STOP}
    mov edi, 1
    vmcall
    ud2

contained_failure:
    lea rsi, [rip + msg_contained]
    call puts
    mov rsi, 0x8000000000000000      # non-canonical
    mov ecx, 1
    mov dx, {DEBUG_PORT}
    rep outsb
    jmp fail

# Each figure is (cycles of the measured loop - cycles of the same loop
# without the exiting instruction) / iterations.
bench:
    mov r12, rsi                     # iterations; r14 counts (CPUID clobbers RBX)
    mov r14, r12                     # baseline loop
    call read_tsc
    mov r13, rax
1:  xor eax, eax
    dec r14
    jnz 1b
    call read_tsc
    sub rax, r13
    mov rbp, rax                     # rbp = baseline cycles

    mov r14, r12
    call read_tsc
    mov r13, rax
1:  xor eax, eax
    cpuid
    dec r14
    jnz 1b
    mov edi, {BENCH_CPUID}
    call report

    mov r14, r12
    call read_tsc
    mov r13, rax
1:  xor eax, eax
    vmcall
    dec r14
    jnz 1b
    mov edi, {BENCH_VMCALL}
    call report

    mov r14, r12
    call read_tsc
    mov r13, rax
1:  xor eax, eax
    out 0x80, al
    dec r14
    jnz 1b
    mov edi, {BENCH_IO}
    call report

    mov eax, {HC_DOMAIN_STOP}
    xor edi, edi
    vmcall
    ud2

# An IDT whose #GP handler counts the fault in R14 and skips the 2-byte
# faulting instruction (RDMSR/WRMSR), and whose #DB handler counts in R13,
# keeps the return RIP in R12 and clears TF; every other vector stays empty.
install_idt:
    lea rax, [rip + gp_handler]
    mov edi, 13
    call set_gate
    lea rax, [rip + db_handler]
    mov edi, 1
    call set_gate
    sub rsp, 16
    mov word ptr [rsp], 256 * 16 - 1
    mov rax, {IDT_GPA}
    mov qword ptr [rsp + 2], rax
    lidt [rsp]
    add rsp, 16
    ret

set_gate:                            # edi = vector, rax = handler
    shl edi, 4
    add rdi, {IDT_GPA}
    mov word ptr [rdi], ax           # offset 15:0
    mov word ptr [rdi + 2], {CODE_SELECTOR}
    mov word ptr [rdi + 4], 0x8e00   # present 64-bit interrupt gate
    shr rax, 16
    mov word ptr [rdi + 6], ax       # offset 31:16
    shr rax, 16
    mov dword ptr [rdi + 8], eax     # offset 63:32
    mov dword ptr [rdi + 12], 0
    ret

db_handler:
    inc r13d
    mov r12, qword ptr [rsp]         # where the guest goes on
    and qword ptr [rsp + 16], -0x101 # clear TF in the saved RFLAGS
    iretq

gp_handler:
    add rsp, 8                       # the error code
    add qword ptr [rsp], 2           # return past the faulting instruction
    inc r14d
    iretq

read_tsc:                            # rax = TSC
    rdtsc
    shl rdx, 32
    or rax, rdx
    ret

report:                              # edi = kind, r13 = start TSC
    call read_tsc
    sub rax, r13
    sub rax, rbp
    xor edx, edx
    div r12
    mov rsi, rax
    mov eax, {HC_BENCH_REPORT}
    vmcall
    ret

puts:                                # rsi = NUL-terminated string
    mov dx, {DEBUG_PORT}
1:  lodsb
    test al, al
    jz 2f
    out dx, al
    jmp 1b
2:  mov al, 10
    out dx, al
    ret

msg_started:  .asciz "selftest: started"
msg_cpuid:    .asciz "selftest: cpuid ok"
msg_io:       .asciz "selftest: io ok"
msg_vmcall:   .asciz "selftest: vmcall ok"
msg_hlt:      .asciz "selftest: hlt ok"
msg_timer:    .asciz "selftest: preemption timer ok"
msg_msr:      .asciz "selftest: msr #gp ok"
msg_cache:    .asciz "selftest: invd/wbinvd ok"
msg_outs:     .ascii "selftest: rep outsb ok\n"
msg_outs_end:
msg_ins:      .asciz "selftest: rep insb ok"
msg_debug:    .asciz "selftest: single-step #db ok"
msg_tsc:      .asciz "selftest: tsc offset ok"
msg_survived: .asciz "selftest: unmapped memory did not fault"
msg_failed:   .asciz "selftest: check failed"
msg_contained: .asciz "contained-failure test: rep outsb from a non-canonical address"
test_guest_end:
