// Package azfake is an in-process fake of the Azure Blob Storage REST API,
// just enough of it for gocloud.dev/blob/azureblob (and the Azure SDK's
// container client under it) to list, read and write block blobs over
// loopback HTTP. No maintained Go fake of Azure Blob exists, and the SDK
// ships none (deps.md §2), so the cloud paths of the azblob:// source are
// tested against this one.
//
// It serves, per container:
//
//   - List Blobs (GET ?restype=container&comp=list) with prefix, delimiter
//     (BlobPrefix entries), maxresults and marker paging (NextMarker);
//   - Get Blob and Get Blob Properties (GET and HEAD on a blob), honouring
//     x-ms-range or Range (206 with Content-Range, 416 InvalidRange past the
//     end), with ETag, Last-Modified, x-ms-creation-time, Content-MD5 and
//     x-ms-blob-type: BlockBlob;
//   - Put Blob (PUT with x-ms-blob-type: BlockBlob, If-None-Match: *),
//     Put Block and Put Block List, so gocloud writers of any size work;
//   - Delete Blob.
//
// Missing blobs answer 404 with x-ms-error-code: BlobNotFound, missing
// containers ContainerNotFound, both with Azure's XML error body.
//
// Requests are never authenticated: a shared key, a SAS token or no
// credential at all are equally accepted, so tests can give the SDK any
// syntactically valid credential. Both path styles are served: the
// account-in-host style /CONTAINER/BLOB (container.NewClientWithNoCredential
// on URL+"/"+CONTAINER) and the local-emulator style /ACCOUNT/CONTAINER/BLOB
// that gocloud's azblob:// URL opener builds with localemu=true.
//
// Server is safe for concurrent use.
package azfake
