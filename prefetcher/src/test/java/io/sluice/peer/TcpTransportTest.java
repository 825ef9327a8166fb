package io.sluice.peer;

class TcpTransportTest extends PeerTransportConformance {
  @Override
  PeerTransport newTransport() {
    return TcpTransport.create(2);
  }
}
