# VM entry and exit. `keel_vmx_run(state)` loads the guest's general-purpose
# registers from `state`, enters the guest (VMLAUNCH the first time, VMRESUME
# after), and returns when the guest exits: VM exits land on `keel_vmx_exit`
# (HOST_RIP) with RSP back at the value this function wrote to HOST_RSP.
#
# Returns 0 after a VM exit, 1 on VMfailInvalid, 2 on VMfailValid.
#
# Calling convention (not the C ABI): the state pointer in RDI, the status
# in RAX; only RBX, RBP and RSP are preserved. The caller (vmx/vcpu.rs)
# declares every other register clobbered, so the compiler saves only what
# it needs across the call instead of six registers on every exit.
#
# RunState layout (vmx/vcpu.rs): rax rcx rdx rbx (rsp) rbp rsi rdi r8..r15 at
# 8-byte slots 0..15, then host_rsp at 128, launched at 136, entry_flags
# at 144 and spec_ctrl at 152.

.set HOST_RSP_FIELD, 0x6c14
.set STATE_HOST_RSP, 128
.set STATE_LAUNCHED, 136
.set STATE_ENTRY_FLAGS, 144
.set STATE_SPEC_CTRL, 152
.set ENTRY_L1D_FLUSH, 1
.set ENTRY_VERW, 2
.set ENTRY_SPEC_CTRL, 4
.set IA32_SPEC_CTRL, 0x48
.set IA32_FLUSH_CMD, 0x10b

.section .text
.global keel_vmx_run
keel_vmx_run:
    push rbp
    push rbx
    push rdi                         # the state pointer, found at [rsp] on exit
    cmp rsp, [rdi + STATE_HOST_RSP]  # HOST_RSP only changes if the caller's stack does
    je 1f
    mov [rdi + STATE_HOST_RSP], rsp
    mov rax, HOST_RSP_FIELD
    vmwrite rax, rsp
    # Side-channel work before entry, out of line (speculation.rs).
1:  cmp byte ptr [rdi + STATE_ENTRY_FLAGS], 0
    jne entry_extras
entry_go:
    cmp byte ptr [rdi + STATE_LAUNCHED], 0
    mov rax, [rdi + 0]
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rbx, [rdi + 24]
    mov rbp, [rdi + 40]
    mov rsi, [rdi + 48]
    mov r8, [rdi + 64]
    mov r9, [rdi + 72]
    mov r10, [rdi + 80]
    mov r11, [rdi + 88]
    mov r12, [rdi + 96]
    mov r13, [rdi + 104]
    mov r14, [rdi + 112]
    mov r15, [rdi + 120]
    mov rdi, [rdi + 56]
    je 2f
    vmresume
    jmp 3f
2:  vmlaunch
3:  # Only reached when entry failed; CF or ZF says how.
    mov eax, 1
    mov ecx, 2
    cmovz eax, ecx
    pop rdi
    pop rbx
    pop rbp
    ret

# The guest's SPEC_CTRL, then the L1D flush or VERW (which clears the
# CPU's buffers) where the CPU needs them. After them only the guest's own
# registers are loaded.
entry_extras:
    test byte ptr [rdi + STATE_ENTRY_FLAGS], ENTRY_SPEC_CTRL
    jz 4f
    mov ecx, IA32_SPEC_CTRL
    mov eax, [rdi + STATE_SPEC_CTRL]
    mov edx, [rdi + STATE_SPEC_CTRL + 4]
    wrmsr
4:  test byte ptr [rdi + STATE_ENTRY_FLAGS], ENTRY_L1D_FLUSH
    jz 5f
    mov ecx, IA32_FLUSH_CMD
    mov eax, 1
    xor edx, edx
    wrmsr
5:  test byte ptr [rdi + STATE_ENTRY_FLAGS], ENTRY_VERW
    jz entry_go
    verw word ptr [rip + keel_verw_selector]
    jmp entry_go

.global keel_vmx_exit
keel_vmx_exit:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0], rax
    mov [rdi + 8], rcx
    mov [rdi + 16], rdx
    mov [rdi + 24], rbx
    mov [rdi + 40], rbp
    mov [rdi + 48], rsi
    mov [rdi + 64], r8
    mov [rdi + 72], r9
    mov [rdi + 80], r10
    mov [rdi + 88], r11
    mov [rdi + 96], r12
    mov [rdi + 104], r13
    mov [rdi + 112], r14
    mov [rdi + 120], r15
    pop rax
    mov [rdi + 56], rax
    mov byte ptr [rdi + STATE_LAUNCHED], 1
    test byte ptr [rdi + STATE_ENTRY_FLAGS], ENTRY_SPEC_CTRL
    jnz exit_spec_ctrl
exit_done:
    pop rdi
    pop rbx
    pop rbp
    xor eax, eax
    ret

# Keel runs with every speculation control off.
exit_spec_ctrl:
    mov ecx, IA32_SPEC_CTRL
    xor eax, eax
    xor edx, edx
    wrmsr
    jmp exit_done

.section .rodata
# Any valid data-segment selector: VERW's buffer clearing needs an operand.
keel_verw_selector:
    .short 0x10
