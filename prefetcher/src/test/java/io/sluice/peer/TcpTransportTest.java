package io.sluice.peer;

class TcpTransportTest extends PeerTransportConformance {
  @Override
  PeerTransport newTransport(long fetchTimeoutMs) {
    return TcpTransport.create(2, fetchTimeoutMs);
  }
}
