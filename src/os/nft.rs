//! A minimal nftables client over nfnetlink: one table with a NAT postrouting chain and
//! masquerade rules for source prefixes. Nothing else of nftables is needed by braid.
//!
//! The table is created with `NFT_TABLE_F_OWNER` (Linux >= 5.12): the kernel deletes it when
//! the netlink socket that made it closes, i.e. when braid exits or is killed. On older kernels
//! the flag is refused and braid falls back to a plain table that it deletes on drop and that
//! `cleanup_stale` removes on the next start.

use super::netlink::{MsgBuf, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};
use super::{Prefix, Result};
use std::net::IpAddr;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFT_TABLE_F_OWNER: u32 = 2;
/// Linux >= 6.9: an owned table outlives its owner's socket (orphaned; the next owner adopts it).
const NFT_TABLE_F_PERSIST: u32 = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_REG_1: u32 = 1;

const NFPROTO_INET: u8 = 1;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_ACCEPT: u32 = 1;

/// An nftables table of family `inet` owned by braid.
pub(crate) struct NftTable {
    sock: Socket,
    name: String,
    deleted: bool,
}

fn msg(ty: u16, flags: u16, family: u8) -> MsgBuf {
    let mut m = MsgBuf::new((NFNL_SUBSYS_NFTABLES << 8) | ty, flags);
    m.raw(&[family, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    m
}

fn expr(m: &mut MsgBuf, name: &str, body: impl FnOnce(&mut MsgBuf)) {
    m.begin(NFTA_LIST_ELEM).attr_str(NFTA_EXPR_NAME, name);
    m.begin(NFTA_EXPR_DATA);
    body(m);
    m.end().end();
}

fn data(m: &mut MsgBuf, ty: u16, v: &[u8]) {
    m.begin(ty).attr(NFTA_DATA_VALUE, v).end();
}

impl NftTable {
    /// Creates (or, without `owner`, reuses) table `inet <name>` with a `postrouting` NAT chain.
    pub(crate) fn create(name: &str, owner: bool) -> Result<NftTable> {
        let mut t = NftTable::open(name)?;
        let flags = owner.then_some(NFT_TABLE_F_OWNER);
        let msgs = t.table_and_chain(flags);
        t.batch(msgs, &|| format!("create nftables table inet {name}"))?;
        Ok(t)
    }

    /// Creates table `inet <name>`, or adopts the one a previous braid left, with a
    /// `postrouting` NAT chain holding exactly `ip saddr <src> masquerade` for each prefix, in
    /// one transaction (an adopted table never misses its rules, so the kernel's NAT of
    /// existing connections never stops). The table outlives braid: tied to braid's socket
    /// with `NFT_TABLE_F_PERSIST` where the kernel has it (6.9+; others cannot change or
    /// flush it while braid runs), a plain table on older kernels. Returns whether it is owned.
    pub(crate) fn adopt(name: &str, masquerade: &[Prefix]) -> Result<(NftTable, bool)> {
        let mut t = NftTable::open(name)?;
        let what = || format!("create or adopt nftables table inet {name}");
        let mut msgs = t.table_and_chain(Some(NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST));
        msgs.extend(t.flush_and_masquerade(masquerade));
        match t.batch(msgs, &what) {
            Ok(()) => return Ok((t, true)),
            // Kernels before 6.9 (no PERSIST), before 5.12 (no OWNER), or a plain table left
            // by such a kernel's braid: a plain table, reused as it is.
            Err(e) if matches!(e.errno(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)) => {}
            Err(e) => return Err(e),
        }
        let mut msgs = t.table_and_chain(None);
        msgs.extend(t.flush_and_masquerade(masquerade));
        t.batch(msgs, &what)?;
        Ok((t, false))
    }

    /// Leaves the table in place when this value drops (for the next braid to adopt).
    pub(crate) fn keep(&mut self) {
        self.deleted = true;
    }

    fn open(name: &str) -> Result<NftTable> {
        Ok(NftTable {
            sock: Socket::open(libc::NETLINK_NETFILTER, 0, false)?,
            name: name.to_string(),
            deleted: false,
        })
    }

    /// The table (with `flags`, or none given: an existing table keeps its own) and its chain.
    fn table_and_chain(&self, flags: Option<u32>) -> Vec<MsgBuf> {
        let name = self.name.as_str();
        let mut tm = msg(
            NFT_MSG_NEWTABLE,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            NFPROTO_INET,
        );
        tm.attr_str(NFTA_TABLE_NAME, name);
        if let Some(f) = flags {
            tm.attr_be32(NFTA_TABLE_FLAGS, f);
        }
        let mut cm = msg(
            NFT_MSG_NEWCHAIN,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            NFPROTO_INET,
        );
        cm.attr_str(NFTA_CHAIN_TABLE, name)
            .attr_str(NFTA_CHAIN_NAME, "postrouting");
        cm.begin(NFTA_CHAIN_HOOK)
            .attr_be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING)
            .attr_be32(NFTA_HOOK_PRIORITY, 100) // srcnat
            .end();
        cm.attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .attr_str(NFTA_CHAIN_TYPE, "nat");
        vec![tm, cm]
    }

    /// Messages that empty the postrouting chain and add one masquerade rule per prefix.
    fn flush_and_masquerade(&self, masquerade: &[Prefix]) -> Vec<MsgBuf> {
        let mut flush = msg(NFT_MSG_DELRULE, NLM_F_REQUEST | NLM_F_ACK, NFPROTO_INET);
        flush
            .attr_str(NFTA_RULE_TABLE, &self.name)
            .attr_str(NFTA_RULE_CHAIN, "postrouting");
        let mut v = vec![flush];
        v.extend(masquerade.iter().map(|p| self.masquerade_msg(*p)));
        v
    }

    /// Appends `ip[6] saddr <prefix> masquerade` to the postrouting chain.
    pub(crate) fn add_masquerade(&mut self, src: Prefix) -> Result<()> {
        let m = self.masquerade_msg(src);
        let name = self.name.clone();
        self.batch(vec![m], &|| {
            format!("add masquerade for {src} to table inet {name}")
        })
    }

    fn masquerade_msg(&self, src: Prefix) -> MsgBuf {
        let mut m = msg(
            NFT_MSG_NEWRULE,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            NFPROTO_INET,
        );
        m.attr_str(NFTA_RULE_TABLE, &self.name)
            .attr_str(NFTA_RULE_CHAIN, "postrouting");
        let (nfproto, off, addr): (u8, u32, Vec<u8>) = match src.network().addr {
            IpAddr::V4(a) => (libc::NFPROTO_IPV4 as u8, 12, a.octets().to_vec()),
            IpAddr::V6(a) => (libc::NFPROTO_IPV6 as u8, 8, a.octets().to_vec()),
        };
        let len = addr.len() as u32;
        let mut mask = vec![0u8; addr.len()];
        for (i, b) in mask.iter_mut().enumerate() {
            let bits = (usize::from(src.len)).saturating_sub(i * 8).min(8);
            *b = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        m.begin(NFTA_RULE_EXPRESSIONS);
        // meta nfproto == ipv4/ipv6
        expr(&mut m, "meta", |m| {
            m.attr_be32(1, NFT_REG_1).attr_be32(2, 15); // DREG, KEY = NFT_META_NFPROTO
        });
        expr(&mut m, "cmp", |m| {
            m.attr_be32(1, NFT_REG_1).attr_be32(2, 0); // SREG, OP = EQ
            data(m, 3, &[nfproto]);
        });
        // payload network header saddr -> reg1; reg1 &= mask; reg1 == prefix
        expr(&mut m, "payload", |m| {
            m.attr_be32(1, NFT_REG_1)
                .attr_be32(2, 1) // BASE = network header
                .attr_be32(3, off)
                .attr_be32(4, len);
        });
        expr(&mut m, "bitwise", |m| {
            m.attr_be32(1, NFT_REG_1)
                .attr_be32(2, NFT_REG_1)
                .attr_be32(3, len);
            data(m, 4, &mask);
            data(m, 5, &vec![0u8; addr.len()]);
        });
        expr(&mut m, "cmp", |m| {
            m.attr_be32(1, NFT_REG_1).attr_be32(2, 0);
            data(m, 3, &addr);
        });
        m.begin(NFTA_LIST_ELEM)
            .attr_str(NFTA_EXPR_NAME, "masq")
            .end();
        m.end();
        m
    }

    /// Sends messages as one nfnetlink batch (one transaction) and waits for every ack.
    fn batch(&mut self, msgs: Vec<MsgBuf>, what: &dyn Fn() -> String) -> Result<()> {
        let mut bytes = Vec::new();
        let mut begin = MsgBuf::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST);
        begin.raw(&[0, 0, 0, NFNL_SUBSYS_NFTABLES as u8]); // res_id = subsys, big endian
        bytes.extend_from_slice(begin.finish(self.sock.next_seq()));
        let mut seqs = Vec::new();
        for mut m in msgs {
            let s = self.sock.next_seq();
            seqs.push(s);
            bytes.extend_from_slice(m.finish(s));
        }
        let mut end = MsgBuf::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST);
        end.raw(&[0, 0, 0, NFNL_SUBSYS_NFTABLES as u8]);
        bytes.extend_from_slice(end.finish(self.sock.next_seq()));
        self.sock.send_raw(&bytes, what)?;
        for s in seqs {
            self.sock.wait_ack(s, what)?;
        }
        Ok(())
    }

    /// Deletes the table (and everything in it). Missing already is fine.
    pub(crate) fn delete(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        let mut m = msg(NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK, NFPROTO_INET);
        m.attr_str(NFTA_TABLE_NAME, &self.name);
        let name = self.name.clone();
        match self.batch(vec![m], &|| format!("delete nftables table inet {name}")) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            log::warn!("nftables cleanup: {e}");
        }
    }
}

/// True when table `inet <name>` exists in the calling thread's namespace.
pub(crate) fn table_exists(name: &str) -> Result<bool> {
    let mut sock = Socket::open(libc::NETLINK_NETFILTER, 0, false)?;
    let mut m = msg(NFT_MSG_GETTABLE, NLM_F_REQUEST, NFPROTO_INET);
    m.attr_str(NFTA_TABLE_NAME, name);
    match sock.dump(m, &|| format!("look up nftables table inet {name}")) {
        Ok(v) => Ok(!v.is_empty()),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes table `inet <name>` if it exists (a crashed instance's, on kernels without owned
/// tables). Returns whether it existed.
pub(crate) fn delete_table(name: &str) -> Result<bool> {
    if !table_exists(name)? {
        return Ok(false);
    }
    let mut t = NftTable {
        sock: Socket::open(libc::NETLINK_NETFILTER, 0, false)?,
        name: name.to_string(),
        deleted: false,
    };
    t.delete()?;
    Ok(true)
}
