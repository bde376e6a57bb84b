import CSynsightABI
import SynsightModel

extension Tracer {
    /// `syn_config.answer_drop_reasons`: bit n of word n/64 set for each core
    /// drop reason (value < 256) of this kernel whose family makes a dropped
    /// handshake ACK, RST or ICMP answer a failure (`DropCause.answerFailures`,
    /// bpf/drops.bpf.h). Named from the running kernel's BTF, never by number.
    static func answerDropReasons(_ names: DropReasonNames) -> (UInt64, UInt64, UInt64, UInt64) {
        var words: [UInt64] = [0, 0, 0, 0]
        for code in names.codes(of: DropCause.answerFailures).keys where code < 256 {
            words[Int(code >> 6)] |= 1 << UInt64(code & 63)
        }
        return (words[0], words[1], words[2], words[3])
    }
}
