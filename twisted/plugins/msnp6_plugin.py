from twisted.application.service import ServiceMaker

msnp6 = ServiceMaker("msnp6", "msnp6.tap", "MSN Messenger (MSNP6) server: DS, NS and SB", "msnp6")
