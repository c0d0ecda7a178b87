// Builds protobuf's lazily created shared state once, before any thread of
// ours can race to create it.
//
// libprotobuf creates several objects on first use under function-local
// static guards inside the (uninstrumented) library: the descriptors and
// default instances of storegw.v1, UnknownFieldSet::default_instance() (what
// reflection returns for a message without unknown fields), and the type
// resolver of the proto3 JSON parser and printer. Two request threads that
// get there first at the same moment are safe as far as the C++ memory model
// goes, but ThreadSanitizer cannot see the library's guard and reports the
// second thread's read as a race with the first thread's allocation. Doing
// all of it once here, on the thread that later starts the others, orders
// every such first use before those threads exist.
//
// Thread-safe and cheap after the first call (std::call_once): call it from
// the start of main() and from every Start() that spawns threads which parse
// or print storegw.v1 messages.
#pragma once

namespace storegw::v1 {

void WarmUpProtobuf();

}  // namespace storegw::v1
