# Stand-in for the packages feed's lang/rust/rust-package.mk: records which path was included.
$(file >>$(SDK_LOG),rust-package.mk $(lastword $(MAKEFILE_LIST)))
RUST_ARCH_DEPENDS:=@(aarch64||arm||mips||mipsel||x86_64)
define Build/Compile/Cargo
cargo build $(2)
endef
define RustBinPackage
$(file >>$(SDK_LOG),RustBinPackage $(1))
endef
