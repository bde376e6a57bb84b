// The BPF programs of an object, read from its ELF symbol table the way
// libbpf finds them: a global function in an executable section other than
// .text is a program (functions in .text are subprograms), named by its
// symbol, typed and attached by its section name. Hand-written because the
// embed step runs in the build plugin's sandbox with no libbpf or bpftool,
// and a 64-bit little-endian ELF's section and symbol tables are a few
// fixed-size records.
import Foundation

struct ProgramEntry {
    /// The C function name (bpf_program__name).
    var name: String
    /// The ELF section (bpf_program__section_name): "tp_btf/kfree_skb", ...
    var section: String
}

/// Why an object's programs could not be listed.
struct ProgramTableError: Error, CustomStringConvertible {
    var description: String
}

enum ProgramTable {
    static let shtSymtab: UInt32 = 2
    static let shfExecinstr: UInt64 = 0x4
    static let sttFunc: UInt8 = 2
    static let stbGlobal: UInt8 = 1

    /// The programs in object order (section, then offset), or why the bytes are not a BPF ELF object.
    static func read(_ elf: [UInt8]) -> Result<[ProgramEntry], ProgramTableError> {
        guard elf.count >= 64, elf[0] == 0x7F, elf[1] == 0x45, elf[2] == 0x4C, elf[3] == 0x46 else {
            return .failure(ProgramTableError(description: "not an ELF file"))
        }
        guard elf[4] == 2, elf[5] == 1 else { return .failure(ProgramTableError(description: "not a 64-bit little-endian ELF object")) }
        let shoff = Int(u64(elf, 0x28)), shentsize = Int(u16(elf, 0x3A)), shnum = Int(u16(elf, 0x3C))
        let shstrndx = Int(u16(elf, 0x3E))
        guard shentsize >= 64, shoff + shnum * shentsize <= elf.count, shstrndx < shnum else {
            return .failure(ProgramTableError(description: "section headers out of bounds"))
        }
        struct Section { var name: Int; var type: UInt32; var flags: UInt64; var offset: Int; var size: Int; var link: Int }
        let sections = (0..<shnum).map { i -> Section in
            let h = shoff + i * shentsize
            return Section(name: Int(u32(elf, h)), type: u32(elf, h + 4), flags: u64(elf, h + 8),
                           offset: Int(u64(elf, h + 24)), size: Int(u64(elf, h + 32)), link: Int(u32(elf, h + 40)))
        }
        guard sections.allSatisfy({ $0.offset + $0.size <= elf.count || $0.type == 8 /* NOBITS */ }) else {
            return .failure(ProgramTableError(description: "section out of bounds"))
        }
        let shstr = sections[shstrndx]
        func sectionName(_ s: Section) -> String { cString(elf, shstr.offset + s.name, end: shstr.offset + shstr.size) }
        guard let symtab = sections.first(where: { $0.type == shtSymtab }), symtab.link < shnum else {
            return .failure(ProgramTableError(description: "no symbol table (was the object stripped of it?)"))
        }
        let strtab = sections[symtab.link]
        var found: [(section: Int, value: UInt64, entry: ProgramEntry)] = []
        for at in stride(from: symtab.offset, to: symtab.offset + symtab.size - 23, by: 24) {
            let info = elf[at + 4], shndx = Int(u16(elf, at + 6))
            guard info & 0xF == sttFunc, info >> 4 == stbGlobal, shndx > 0, shndx < shnum else { continue }
            let s = sections[shndx]
            let secName = sectionName(s)
            guard s.flags & shfExecinstr != 0, secName != ".text" else { continue }
            let name = cString(elf, strtab.offset + Int(u32(elf, at)), end: strtab.offset + strtab.size)
            found.append((shndx, u64(elf, at + 8), ProgramEntry(name: name, section: secName)))
        }
        return .success(found.sorted { ($0.section, $0.value) < ($1.section, $1.value) }.map(\.entry))
    }

    /// The Swift case name of a program: its C name in lowerCamelCase
    /// (`rst_tp_send_reset` -> `rstTpSendReset`).
    static func caseName(_ name: String) -> String {
        let parts = name.split(separator: "_").map(String.init)
        guard let first = parts.first else { return "_" }
        return first + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The generated Swift enum: one case per program, its raw value the C name.
    static func swiftEnum(_ programs: [ProgramEntry], object: String) -> String {
        var s = """
            /// The programs of bpf/\(object).bpf.c (generated from its ELF symbol table):
            /// the one way Swift names a program. Raw value: the C function name.
            public enum Program: String, CaseIterable, Sendable {

        """
        for p in programs { s += "        case \(caseName(p.name)) = \"\(p.name)\"\n" }
        s += """

                /// Its ELF section: the program type and attach point libbpf reads from it.
                public var section: String {
                    switch self {

            """
        for p in programs { s += "            case .\(caseName(p.name)): return \"\(p.section)\"\n" }
        s += "            }\n        }\n    }\n"
        return s
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(u16(b, at)) | UInt32(u16(b, at + 2)) << 16 }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(u32(b, at)) | UInt64(u32(b, at + 4)) << 32 }

    static func cString(_ b: [UInt8], _ at: Int, end: Int) -> String {
        guard at < min(end, b.count) else { return "" }
        let stop = b[at..<min(end, b.count)].firstIndex(of: 0) ?? min(end, b.count)
        return String(decoding: b[at..<stop], as: UTF8.self)
    }
}
