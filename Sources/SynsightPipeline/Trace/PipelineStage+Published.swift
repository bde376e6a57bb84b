import SynsightBase
import SynsightKernel
import SynsightModel

extension PipelineStage {
    /// A container that started publishing a named port since the last
    /// check (PublishedPortFollower): its container end joins the records'
    /// filter and its container port the kernel's, and stderr says so.
    func followPublishedPorts(now: UInt64) {
        guard let follower, let fresh = follower.refresh(now: now) else { return }
        publishedTargets = Set(follower.published.map(\.target))
        guard !fresh.isEmpty else { return }
        let wasFull = kernelPortFilter?.kernelPorts == nil
        do {
            try kernelPortFilter?.add(fresh.compactMap(\.targetPort))
        } catch {
            Output.stderr("synsight: \(error); refusals at the container ports of \(fresh.map(\.published).joined(separator: ", ")) may be missed\n")
        }
        for p in fresh {
            Output.stderr("synsight: port \(p.hostPort.map(String.init) ?? p.published) is now published to \(p.target): followed there\n")
        }
        if !wasFull, kernelPortFilter?.kernelPorts == nil { Output.stderr(PortFilter.fullNote + "\n") }
    }
}
