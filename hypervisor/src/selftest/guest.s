# Keel's built-in test guest: position-independent 64-bit code copied into
# a fresh domain and entered with RDI = mode, RSI = bench iterations.
#   mode 0 (selftest): exercises every exit class, checking each answer, and
#                      ends by touching unmapped memory (a contained fault).
#   mode 1 (bench):    times round trips of CPUID, VMCALL and port I/O with
#                      RDTSC and reports instructions per round trip.
#   mode 2 (unhandled): executes INVD, an exit Keel does not handle.
# Output goes through the debug-console port, one byte per OUT.

.section .rodata.test_guest, "a"
.global test_guest_start
.global test_guest_end
test_guest_start:
    cmp rdi, 1
    je bench
    cmp rdi, 2
    je unhandled_exit

selftest:
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

unhandled_exit:
    lea rsi, [rip + msg_invd]
    call puts
    invd
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
# faulting instruction (RDMSR/WRMSR); every other vector stays empty.
install_idt:
    lea rax, [rip + gp_handler]
    mov rdi, {IDT_GPA} + 13 * 16
    mov word ptr [rdi], ax           # offset 15:0
    mov word ptr [rdi + 2], {CODE_SELECTOR}
    mov word ptr [rdi + 4], 0x8e00   # present 64-bit interrupt gate
    shr rax, 16
    mov word ptr [rdi + 6], ax       # offset 31:16
    shr rax, 16
    mov dword ptr [rdi + 8], eax     # offset 63:32
    mov dword ptr [rdi + 12], 0
    sub rsp, 16
    mov word ptr [rsp], 256 * 16 - 1
    mov rax, {IDT_GPA}
    mov qword ptr [rsp + 2], rax
    lidt [rsp]
    add rsp, 16
    ret

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
msg_survived: .asciz "selftest: unmapped memory did not fault"
msg_failed:   .asciz "selftest: check failed"
msg_invd:     .asciz "unhandled-exit test: executing INVD"
test_guest_end:
