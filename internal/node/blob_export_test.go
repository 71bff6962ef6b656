package node

import "io"

// SetBlobSendFilter makes every blob get served by n write its stream
// through f (nil: directly), so a test can make a node tamper with what it
// serves while the receivers' verification stays the real one.
func (n *Node) SetBlobSendFilter(f func(io.Writer) io.Writer) {
	if f == nil {
		n.blobs.sendFilter.Store(nil)
		return
	}
	n.blobs.sendFilter.Store(&f)
}
