package protocol

// Reasons of a resume_failed frame (Frame.Reason). Whatever the reason, nothing was resumed: the
// frame's Rooms lists every room of the resume with value 0, and the client joins them afresh with
// join_room. Frame.Message, when present, says more for humans.
const (
	ResumeSessionUnknown = "session_unknown" // the session is unknown, expired, already resumed or another user's
	ResumeHistoryGap     = "history_gap"     // a room's history no longer reaches back to the client's last roomSeq
	ResumeNotMember      = "not_member"      // a room the session had not joined
	ResumeAlreadyJoined  = "already_joined"  // a room this connection has already joined
	ResumeRoomLimit      = "room_limit"      // the rooms would exceed the per-connection room limit
	ResumeInternal       = "internal"        // the server failed (e.g. its broker)
)

// ReasonSessionTaken is the close reason (with CloseSessionUnknown, 4002) sent to a connection whose
// session was continued by a newer connection (hello with session, or resume). Such a connection
// should reconnect with a fresh session, not present the old one again.
const ReasonSessionTaken = "session_taken"

// MetricResumesTotal counts resume frames by result: "ok" or one of the Resume* reasons.
const MetricResumesTotal = "ws_resumes_total"
