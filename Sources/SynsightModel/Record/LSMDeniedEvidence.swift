import SynsightBase
/// The evidence of `lsm_denied`: the failed call, then the fields of its
/// cause: SELinux's AVC denial, Landlock's missing access right, or, for
/// another module, which modules are active.
public struct LSMDeniedEvidence: SocketCallEvidence {
    public static let reasons: Set<Reason> = [.lsmDenied]

    public var call: String?
    public var errno: String?
    public var socketProtocol: String?
    // selinux: the AVC denial.
    public var scontext: String?
    public var tcontext: String?
    public var tclass: String?
    /// The permissions denied, and those requested (`requested` in JSON).
    public var permissions: [String]?
    public var requestedPermissions: [String]?
    /// enforcing or permissive.
    public var mode: String?
    public var result: Int32?
    /// How many AVC denials the call saw, when more than one.
    public var denials: UInt8?
    // landlock: the sandbox and the access right it lacks.
    public var lsm: String?
    public var operation: String?
    public var sandboxedPid: UInt32?
    public var access: String?
    // other_lsm: the active modules (`.some(nil)`: the list could not be read,
    // written as null) and the capability check for bind().
    public var activeLsms: [String]??
    public var capabilityCheck: String?
    // cgroup_bpf: the programs in effect at the call's hooks, and what could not be read.
    public var bpfPrograms: [JSONValue]?
    public var bpfProgramsUnavailable: String?

    public init() {}

    public static let layout: [EvidenceField<LSMDeniedEvidence>] = callLayout + [
        .string(.scontext, \.scontext), .string(.tcontext, \.tcontext), .string(.tclass, \.tclass),
        .strings(.permissions, \.permissions), .strings(.requested, \.requestedPermissions),
        .string(.mode, \.mode), .int(.result, \.result), .int(.denials, \.denials),
        .string(.lsm, \.lsm), .string(.operation, \.operation), .int(.sandboxedPid, \.sandboxedPid), .string(.access, \.access),
        .nullableStrings(.activeLsms, \.activeLsms), .string(.capabilityCheck, \.capabilityCheck),
        .array(.bpfPrograms, \.bpfPrograms), .string(.bpfProgramsUnavailable, \.bpfProgramsUnavailable),
    ]
}

extension Record {
    /// The typed evidence of an `lsm_denied` record; nil for any other reason.
    public var lsmDeniedEvidence: LSMDeniedEvidence? { evidence(as: LSMDeniedEvidence.self) }
}
