"""The instruction set: opcode table, decode/encode, assembler, disassembler, interpreter."""
