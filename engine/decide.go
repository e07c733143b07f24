package engine

import "fmt"

// The release decisions every driver shares (the CLI, the console, a
// server): which version a rollback returns to, whether a deploy resumes
// an interrupted release, which gate an approve passes. They read the
// journal's records and events and change nothing.

// RollbackTo finds the version a rollback of a service returns to, from
// its releases (newest first, as Journal.Releases lists them): to, if not
// empty, with the image the journal pinned for it where it knows one;
// otherwise the stable version of the latest deploy, which undo names.
// Nothing on this path asks the platform: the journal pinned the image
// each version ran from when its release began.
func RollbackTo(service string, recs []ReleaseRecord, to string) (stable VersionRef, undo string, err error) {
	for _, r := range recs {
		if r.Kind == KindDeploy {
			undo, stable = r.ID, r.Stable()
			break
		}
	}
	if to != "" {
		stable = VersionRef{Version: to}
		for _, r := range recs {
			for _, v := range append([]VersionRef{{Version: r.To.Version, Image: r.To.Image}}, r.From...) {
				if v.Version == to && v.Image != "" && stable.Image == "" {
					stable.Image = v.Image
				}
			}
		}
	}
	if stable.Version == "" {
		return VersionRef{}, "", fmt.Errorf("%s: the journal has no release with a version to return to; name one with --to VERSION", service)
	}
	return stable, undo, nil
}

// Interrupted returns the service's latest release if it is a deploy that
// did not finish (aborted, failed, detached, or its process died).
func Interrupted(recs []ReleaseRecord) (ReleaseRecord, bool) {
	if len(recs) == 0 || recs[0].Kind != KindDeploy || recs[0].State.Finished() {
		return ReleaseRecord{}, false
	}
	return recs[0], true
}

// Resumable says whether a deploy of target should continue the service's
// interrupted release rather than start anew: the same version. The
// resumed release runs its journaled target (the image pinned when it
// began); if the version now names another image, resuming would mix two
// images under one version, so it is refused with what to do.
func Resumable(service string, recs []ReleaseRecord, target Target) (ReleaseRecord, bool, error) {
	rec, ok := Interrupted(recs)
	if !ok || rec.To.Version != target.Version {
		return ReleaseRecord{}, false, nil
	}
	if rec.To.Digest != "" && target.Digest != "" && rec.To.Digest != target.Digest {
		return ReleaseRecord{}, false, fmt.Errorf("%s: release %s of %s was interrupted running image %s, but %s now names %s; "+
			"`cutover rollback %s` undoes it, then deploy again", service, rec.ID, rec.To.Version, ShortDigest(rec.To.Digest),
			target.Version, ShortDigest(target.Digest), service)
	}
	return rec, true, nil
}

// WaitingGate is the approval gate a release waits at, as its journaled
// events tell: the last gate-waiting event of an approval gate not passed
// since. ok is false when the release waits at none.
func WaitingGate(evs []Event) (g GateView, ok bool) {
	for _, ev := range evs {
		switch {
		case ev.Kind == EventGateWaiting && ev.Gate != nil && ev.Gate.Kind == GateApproval:
			g, ok = GateView{Gate: *ev.Gate, Step: ev.Step, Since: ev.At, WaitingFor: "an operator's approve (or promote)"}, true
		case ev.Kind == EventGatePassed, ev.Kind == EventStarted, ev.Kind == EventRollingBack, ev.Kind == EventFinished && ev.Outcome != WaitingForApproval:
			ok = false
		}
	}
	return g, ok
}
