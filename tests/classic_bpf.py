"""A classic BPF interpreter for the instructions `gateway.core.kernel_filter` emits, written from
the kernel's semantics (<linux/filter.h>) and apart from the program's builder: the tests run
the program on frames without a kernel, and the TAP test checks the kernel agrees."""

from __future__ import annotations


class UnsupportedInstruction(ValueError):
    pass


def run_filter(program, frame: bytes) -> int:
    """What the kernel's filter returns for `frame`: bytes to keep, 0 to drop.

    A load past the frame's end ends the program with 0, as in the kernel."""
    a = x = 0
    memory = [0] * 16
    pc = 0
    steps = 0
    while True:
        steps += 1
        if steps > 4096 or pc >= len(program):
            raise UnsupportedInstruction("ran off the program or looped")
        ins = program[pc]
        code, jt, jf, k = ins.code, ins.jt, ins.jf, ins.k
        pc += 1
        cls = code & 0x07
        if cls in (0x00, 0x01):  # LD, LDX
            size, mode = code & 0x18, code & 0xE0
            width = {0x00: 4, 0x08: 2, 0x10: 1}[size]
            if cls == 0x01 and mode == 0xA0 and size == 0x10:  # ldxb 4*([k]&0xf)
                if k >= len(frame):
                    return 0
                x = (frame[k] & 0x0F) * 4
                continue
            if cls == 0x00 and mode in (0x20, 0x40):  # ABS, IND
                offset = k + (x if mode == 0x40 else 0)
                if offset + width > len(frame):
                    return 0
                a = int.from_bytes(frame[offset:offset + width], "big")
                continue
            if code == 0x60:  # ld M[k]
                a = memory[k]
                continue
            if code == 0x80:  # ld len
                a = len(frame)
                continue
            raise UnsupportedInstruction(hex(code))
        if code == 0x02:  # st M[k]
            memory[k] = a
            continue
        if code == 0x07:  # tax
            x = a
            continue
        if cls == 0x04:  # ALU, 32-bit
            operand = x if code & 0x08 else k
            op = code & 0xF0
            if op == 0x00:
                a = (a + operand) & 0xFFFFFFFF
            elif op == 0x50:
                a &= operand
            elif op == 0x70:
                a >>= operand
            else:
                raise UnsupportedInstruction(hex(code))
            continue
        if cls == 0x05:  # JMP
            op = code & 0xF0
            operand = x if code & 0x08 else k
            if op == 0x00:
                pc += k
            elif op == 0x10:
                pc += jt if a == operand else jf
            elif op == 0x30:
                pc += jt if a >= operand else jf
            elif op == 0x40:
                pc += jt if a & operand else jf
            else:
                raise UnsupportedInstruction(hex(code))
            continue
        if code == 0x06:  # RET K
            return k
        raise UnsupportedInstruction(hex(code))
