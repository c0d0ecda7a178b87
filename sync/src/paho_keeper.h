// Keeps Paho C's background threads running for the life of the process.
//
// Paho C (libpaho-mqtt3as) runs every client of a process on two shared
// threads, MQTTAsync_send and MQTTAsync_rcv. When the last client of the
// process is destroyed it stops both and frees its global state
// (MQTTAsync_terminate); the next client starts them again. Our transports
// destroy the old client before each reconnect, so every reconnect of a
// gateway went through that stop-and-restart, and ThreadSanitizer caught
// Paho 1.3.12 freeing a buffer in the new send thread that the new receive
// thread then wrote to (a use after free with both threads inside Paho,
// under its own mutex), during broker restarts. One client that is never
// connected and never destroyed keeps Paho's client count above zero, so
// the threads start once and stay; it costs one idle handle and no socket.
#pragma once

namespace storegw::sync {

// Idempotent and thread-safe; call before creating a Paho client.
void KeepPahoRunning();

}  // namespace storegw::sync
