"""The stand-in stock agency: an SFTP server (asyncssh) that checks uploaded CSVs."""
