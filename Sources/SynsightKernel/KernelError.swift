import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// An error from the kernel side, always saying what failed, why, and what
/// to do about it, in one line suitable for a terminal.
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var why: String
    public var fix: String?
    public var errno: Int32?

    public init(what: String, why: String, fix: String? = nil, errno: Int32? = nil) {
        self.what = what
        self.why = why
        self.fix = fix
        self.errno = errno
    }

    public var description: String {
        "\(what): \(why)" + (fix.map { " (\($0))" } ?? "")
    }

    /// From a libbpf/syscall failure: `code` is a negative or positive errno.
    static func sys(_ what: String, code: Int32, fix: String? = nil) -> KernelError {
        let e = abs(code)
        let why = "\(ErrnoName.name(e)): \(String(cString: strerror(e)))"
        var fix = fix
        if fix == nil, e == EPERM || e == EACCES {
            fix = "run as root, or with CAP_BPF and CAP_PERFMON"
        }
        return KernelError(what: what, why: why, fix: fix, errno: e)
    }
}

