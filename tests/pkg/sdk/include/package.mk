# Stand-in for $(INCLUDE_DIR)/package.mk. BuildPackage records the package and writes what the
# real build puts in the package: the conffiles, the prerm-pkg script, and the prepared stamp
# (package.mk's STAMP_PREPARED: an md5 of every file under CURDIR and PKG_FILE_DEPENDS, so an
# edit there re-prepares and rebuilds). `make install-NAME` runs Package/NAME/install into
# $(SDK_OUT)/root.
$(file >>$(SDK_LOG),package.mk)
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR ?= $(PKG_BUILD_DIR)/ipkg-install
find_md5=find $(wildcard $(1)) -type f | LC_ALL=C sort | xargs md5sum | md5sum | cut -d' ' -f1

define BuildPackage
$(file >>$(SDK_LOG),BuildPackage $(1))
$(file >$(SDK_OUT)/$(1).conffiles,$(Package/$(1)/conffiles))
$(file >$(SDK_OUT)/$(1).prerm-pkg,$(Package/$(1)/prerm))
$(file >$(SDK_OUT)/$(1).stamp,$(shell $(call find_md5,$(CURDIR) $(PKG_FILE_DEPENDS))))
$(file >$(SDK_OUT)/$(1).compile,$(Build/Compile))
install-$(1):
	$(call Package/$(1)/install,$(SDK_OUT)/root)
endef
