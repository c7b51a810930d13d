package format

import "math/bits"

// DirHash is the htree hash of a directory entry name: major hash (low
// bit clear; the index uses the low bit to mark hash collisions spilling
// into the next leaf) and minor hash.
//
// version is one of the Hash* constants; the signed and unsigned variants
// differ only for name bytes >= 0x80 (whether they are read as signed
// char). seed is s_hash_seed; all zeros selects the default MD4 constants.
// Only half_md4 and TEA are implemented; other versions panic.
func DirHash(name []byte, version uint8, seed [16]byte) (major, minor uint32) {
	buf := [4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}
	if seed != [16]byte{} {
		for i := range buf {
			buf[i] = le.Uint32(seed[4*i:])
		}
	}
	signed := version < HashLegacyUnsigned
	var in [8]uint32
	switch version {
	case HashHalfMD4, HashHalfMD4Unsigned:
		for p := name; len(p) > 0; p = p[min(32, len(p)):] {
			str2hashbuf(p, in[:8], signed)
			halfMD4(&buf, &in)
		}
		major, minor = buf[1], buf[2]
	case HashTea, HashTeaUnsigned:
		for p := name; len(p) > 0; p = p[min(16, len(p)):] {
			str2hashbuf(p, in[:4], signed)
			tea(&buf, in[:4])
		}
		major, minor = buf[0], buf[1]
	default:
		panic("format: unsupported directory hash version")
	}
	major &^= 1
	if major == 0x7fffffff<<1 { // reserved for end of directory
		major = (0x7fffffff - 1) << 1
	}
	return major, minor
}

// str2hashbuf packs up to 4*len(out) bytes of msg into out, padding with
// a word made of the (full) remaining length.
func str2hashbuf(msg []byte, out []uint32, signed bool) {
	n := len(msg)
	pad := uint32(n) | uint32(n)<<8
	pad |= pad << 16
	val := pad
	if n > 4*len(out) {
		n = 4 * len(out)
	}
	j := 0
	for i := 0; i < n; i++ {
		c := uint32(msg[i])
		if signed {
			c = uint32(int32(int8(msg[i])))
		}
		val = c + val<<8
		if i%4 == 3 {
			out[j] = val
			j++
			val = pad
		}
	}
	if j < len(out) {
		out[j] = val
		j++
	}
	for ; j < len(out); j++ {
		out[j] = pad
	}
}

// halfMD4 is the kernel's half_md4_transform: three rounds of MD4 over
// eight words.
func halfMD4(buf *[4]uint32, in *[8]uint32) {
	const k2, k3 = 0x5A827999, 0x6ED9EBA1 // 013240474631, 015666365641
	f := func(x, y, z uint32) uint32 { return z ^ (x & (y ^ z)) }
	g := func(x, y, z uint32) uint32 { return (x & y) + ((x ^ y) & z) }
	h := func(x, y, z uint32) uint32 { return x ^ y ^ z }
	a, b, c, d := buf[0], buf[1], buf[2], buf[3]

	a = bits.RotateLeft32(a+f(b, c, d)+in[0], 3)
	d = bits.RotateLeft32(d+f(a, b, c)+in[1], 7)
	c = bits.RotateLeft32(c+f(d, a, b)+in[2], 11)
	b = bits.RotateLeft32(b+f(c, d, a)+in[3], 19)
	a = bits.RotateLeft32(a+f(b, c, d)+in[4], 3)
	d = bits.RotateLeft32(d+f(a, b, c)+in[5], 7)
	c = bits.RotateLeft32(c+f(d, a, b)+in[6], 11)
	b = bits.RotateLeft32(b+f(c, d, a)+in[7], 19)

	a = bits.RotateLeft32(a+g(b, c, d)+in[1]+k2, 3)
	d = bits.RotateLeft32(d+g(a, b, c)+in[3]+k2, 5)
	c = bits.RotateLeft32(c+g(d, a, b)+in[5]+k2, 9)
	b = bits.RotateLeft32(b+g(c, d, a)+in[7]+k2, 13)
	a = bits.RotateLeft32(a+g(b, c, d)+in[0]+k2, 3)
	d = bits.RotateLeft32(d+g(a, b, c)+in[2]+k2, 5)
	c = bits.RotateLeft32(c+g(d, a, b)+in[4]+k2, 9)
	b = bits.RotateLeft32(b+g(c, d, a)+in[6]+k2, 13)

	a = bits.RotateLeft32(a+h(b, c, d)+in[3]+k3, 3)
	d = bits.RotateLeft32(d+h(a, b, c)+in[7]+k3, 9)
	c = bits.RotateLeft32(c+h(d, a, b)+in[2]+k3, 11)
	b = bits.RotateLeft32(b+h(c, d, a)+in[6]+k3, 15)
	a = bits.RotateLeft32(a+h(b, c, d)+in[1]+k3, 3)
	d = bits.RotateLeft32(d+h(a, b, c)+in[5]+k3, 9)
	c = bits.RotateLeft32(c+h(d, a, b)+in[0]+k3, 11)
	b = bits.RotateLeft32(b+h(c, d, a)+in[4]+k3, 15)

	buf[0] += a
	buf[1] += b
	buf[2] += c
	buf[3] += d
}

// tea is the kernel's TEA_transform: 16 rounds of TEA over four words.
func tea(buf *[4]uint32, in []uint32) {
	const delta = 0x9E3779B9
	var sum uint32
	b0, b1 := buf[0], buf[1]
	a, b, c, d := in[0], in[1], in[2], in[3]
	for n := 16; n > 0; n-- {
		sum += delta
		b0 += ((b1 << 4) + a) ^ (b1 + sum) ^ ((b1 >> 5) + b)
		b1 += ((b0 << 4) + c) ^ (b0 + sum) ^ ((b0 >> 5) + d)
	}
	buf[0] += b0
	buf[1] += b1
}
