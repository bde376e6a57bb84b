import CLibBPF
import CSynsightShim
@testable import SynsightKernel
import Testing

@Suite("the generated program enum")
struct ProgramEnumTests {
    /// The embedded object's programs as libbpf sees them (name, section).
    static func libbpfPrograms() throws -> [(String, String)] {
        let bytes = try #require(base64Decode(BPFObject_refusals.base64))
        let obj = try #require(bytes.withUnsafeBytes { syn_open_object($0.baseAddress, $0.count, "synsight") })
        defer { bpf_object__close(obj) }
        var out: [(String, String)] = []
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            out.append((String(cString: bpf_program__name(p)), String(cString: bpf_program__section_name(p))))
            prog = bpf_object__next_program(obj, p)
        }
        return out
    }

    @Test("one case per program libbpf finds in the embedded object, with its section, in object order")
    func matchesObject() throws {
        let programs = try Self.libbpfPrograms()
        #expect(!programs.isEmpty)
        #expect(BPFProgram.allCases.map(\.rawValue) == programs.map(\.0))
        #expect(BPFProgram.allCases.map(\.section) == programs.map(\.1))
    }
}
