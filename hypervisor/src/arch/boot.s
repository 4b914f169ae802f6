# Multiboot2 header and the 32-bit -> 64-bit entry path.
#
# GRUB enters `_start` in 32-bit protected mode with paging off, EAX holding
# the multiboot2 magic and EBX the physical address of the boot information.
# We identity-map the first 4 GiB with 2 MiB pages (RAM and the MMIO windows
# the hypervisor touches live there), enable long mode and call
# `keel_main(boot_info, magic)`.

.set MB2_MAGIC, 0xe85250d6
.set MB2_ARCH_I386, 0

.section .multiboot2, "a"
.balign 8
mb2_header_start:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header_start))
    .balign 8
    .short 0            # end tag
    .short 0
    .long 8
mb2_header_end:

.section .text.boot, "ax"
.code32
.global _start
_start:
    cli
    cld
    mov esp, offset boot_stack_top
    mov edi, ebx                    # boot information (first argument)
    mov esi, eax                    # multiboot2 magic (second argument)

    # PML4[0] -> PDPT; PDPT[0..4] -> four page directories of 2 MiB pages.
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov [boot_pml4], eax
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 0x3
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb 1b

    # 2048 entries, entry i maps i * 2 MiB (present | writable | huge).
    xor ecx, ecx
2:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov edx, ecx
    shr edx, 11                     # bits 32+ of the address: i / 2048 == 0 here
    mov [boot_pd + ecx * 8], eax
    mov [boot_pd + ecx * 8 + 4], edx
    inc ecx
    cmp ecx, 2048
    jb 2b

    # The 2 MiB page that holds the stack's guard page becomes 512 pages of
    # 4 KiB, the guard not present: a stack overflow faults (and the #DF
    # handler, on its own IST stack, reports it) instead of running over
    # whatever lies below the stack.
    mov eax, offset boot_stack_guard
    and eax, ~0x1FFFFF
    xor ecx, ecx
3:  mov edx, ecx
    shl edx, 12
    add edx, eax
    or edx, 0x3
    mov [boot_pt + ecx * 8], edx
    mov dword ptr [boot_pt + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 512
    jb 3b
    mov eax, offset boot_stack_guard
    shr eax, 12
    and eax, 511
    mov dword ptr [boot_pt + eax * 8], 0
    mov eax, offset boot_stack_guard
    shr eax, 21
    mov edx, offset boot_pt
    or edx, 0x3
    mov [boot_pd + eax * 8], edx
    mov dword ptr [boot_pd + eax * 8 + 4], 0

    mov eax, cr4
    or eax, (1 << 5)                # PAE
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080             # IA32_EFER
    rdmsr
    or eax, (1 << 8) | (1 << 11)    # LME | NXE
    wrmsr
    mov eax, cr0
    and eax, ~((1 << 30) | (1 << 29))   # clear CD | NW: caches on
    or eax, (1 << 31) | (1 << 16) | (1 << 5) | 1   # PG | WP | NE | PE
    mov cr0, eax

    lgdt [boot_gdt_pointer]
    # ljmp 0x08:long_mode_entry, spelled out to keep the 32-bit encoding.
    .byte 0xea
    .long long_mode_entry
    .short 0x08

.code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    mov edi, edi                    # upper halves are undefined after the switch
    mov esi, esi
    call keel_main
3:  cli
    hlt
    jmp 3b

.section .rodata
.balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        # 0x08: 64-bit code
    .quad 0x00cf92000000ffff        # 0x10: data
boot_gdt_pointer:
    .short boot_gdt_pointer - boot_gdt - 1
    .long boot_gdt

.section .bss
.balign 4096
.global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4
boot_pt:    .skip 4096
# Never mapped (see above): the page below the stack.
.global boot_stack_guard
boot_stack_guard: .skip 4096
.global boot_stack_top
boot_stack: .skip 64 * 1024
boot_stack_top:
